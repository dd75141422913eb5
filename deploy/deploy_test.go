// Package deploy holds the files that run undersigned for real; its test
// lints them. No Docker engine or Kubernetes cluster is available where
// they were written, so they are checked, not run: each Kubernetes object
// is decoded strictly into its API type (an unknown or misspelt field
// fails), and the references between the files (Secrets, ConfigMaps,
// Service selectors and ports, compose dependencies, the flags given to
// undersigned-server) are checked against each other.
package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// documents splits a YAML file into its documents.
func documents(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(d) != "" {
			out = append(out, []byte(d))
		}
	}
	return out
}

// manifests are the objects of a folder: the pod templates by kind/name,
// and the Services.
type manifests struct {
	pods     map[string]*corev1.PodTemplateSpec
	services []*corev1.Service
	names    map[string]bool // kind/name
}

func decode(t *testing.T, dir string) *manifests {
	t.Helper()
	m := &manifests{pods: map[string]*corev1.PodTemplateSpec{}, names: map[string]bool{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" || strings.HasPrefix(filepath.Base(f), "trillian-on-") {
			continue
		}
		for _, doc := range documents(t, f) {
			var meta struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			var obj any
			switch meta.Kind {
			case "Deployment":
				obj = &appsv1.Deployment{}
			case "StatefulSet":
				obj = &appsv1.StatefulSet{}
			case "Service":
				obj = &corev1.Service{}
			case "Namespace":
				obj = &corev1.Namespace{}
			case "Job":
				obj = &batchv1.Job{}
			case "PodDisruptionBudget":
				obj = &policyv1.PodDisruptionBudget{}
			default:
				t.Fatalf("%s: no check for kind %q: add it", f, meta.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Errorf("%s: %s: %v", f, meta.Kind, err)
				continue
			}
			switch o := obj.(type) {
			case *appsv1.Deployment:
				m.pods["Deployment/"+o.Name] = &o.Spec.Template
				m.names["Deployment/"+o.Name] = true
				checkSelector(t, f, o.Spec.Selector.MatchLabels, o.Spec.Template.Labels)
			case *appsv1.StatefulSet:
				m.pods["StatefulSet/"+o.Name] = &o.Spec.Template
				m.names["StatefulSet/"+o.Name] = true
				checkSelector(t, f, o.Spec.Selector.MatchLabels, o.Spec.Template.Labels)
			case *batchv1.Job:
				m.pods["Job/"+o.Name] = &o.Spec.Template
			case *corev1.Service:
				m.services = append(m.services, o)
			}
		}
	}
	return m
}

func checkSelector(t *testing.T, file string, selector, labels map[string]string) {
	t.Helper()
	for k, v := range selector {
		if labels[k] != v {
			t.Errorf("%s: the selector %s=%s does not select the pod template (%v)", file, k, v, labels)
		}
	}
}

// The Secrets and ConfigMaps the operator creates, with their keys (see
// README.md), and those the kustomizations generate.
var (
	secrets = map[string][]string{
		"database-passwords": {"postgres", "trillian", "undersigned", "mysql-root"},
		"undersigned-data":   nil,
	}
	configMaps = map[string][]string{
		"undersigned":   {"origin", "tree-id"},
		"postgres-init": {"init.sh", "postgresql.sql"},
		"mysql-init":    {"mysql.sql"},
	}
)

// undersignedFlags are the flags of `undersigned-server serve` the
// manifests may use.
var undersignedFlags = []string{"--data", "--grpc", "--http", "--origin", "--trillian", "--tree-id", "--postgres", "--max-connections-per-address"}

func TestKubernetes(t *testing.T) {
	for _, dir := range []string{"kubernetes/base", "kubernetes/mysql"} {
		t.Run(dir, func(t *testing.T) {
			m := decode(t, dir)
			if dir == "kubernetes/mysql" {
				for k, v := range decode(t, "kubernetes/base").pods {
					m.pods[k] = v
				}
			}
			for name, pod := range m.pods {
				for _, c := range pod.Spec.Containers {
					if c.Image == "" {
						t.Errorf("%s: container %s has no image", name, c.Name)
					}
					for _, e := range c.Env {
						if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil {
							keys, ok := secrets[r.SecretKeyRef.Name]
							if !ok || !slices.Contains(keys, r.SecretKeyRef.Key) {
								t.Errorf("%s: env %s reads secret %s key %s, which README.md does not create", name, e.Name, r.SecretKeyRef.Name, r.SecretKeyRef.Key)
							}
						}
						if r := e.ValueFrom; r != nil && r.ConfigMapKeyRef != nil {
							if !slices.Contains(configMaps[r.ConfigMapKeyRef.Name], r.ConfigMapKeyRef.Key) {
								t.Errorf("%s: env %s reads config map %s key %s, which nothing creates", name, e.Name, r.ConfigMapKeyRef.Name, r.ConfigMapKeyRef.Key)
							}
						}
					}
					// $(VAR) in arguments must name an env variable.
					for _, a := range append(slices.Clone(c.Command), c.Args...) {
						for _, ref := range regexp.MustCompile(`\$\(([A-Z_]+)\)`).FindAllStringSubmatch(a, -1) {
							if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == ref[1] }) {
								t.Errorf("%s: argument %q uses $(%s), which is not in the container's env", name, a, ref[1])
							}
						}
					}
					if c.Name == "undersigned" {
						for _, a := range c.Args[1:] {
							flag, _, _ := strings.Cut(a, "=")
							if !slices.Contains(undersignedFlags, flag) {
								t.Errorf("%s: undersigned-server has no flag %s", name, flag)
							}
						}
					}
				}
				for _, v := range pod.Spec.Volumes {
					if v.Secret != nil {
						if _, ok := secrets[v.Secret.SecretName]; !ok {
							t.Errorf("%s: volume %s mounts secret %s, which README.md does not create", name, v.Name, v.Secret.SecretName)
						}
					}
					if v.ConfigMap != nil {
						if _, ok := configMaps[v.ConfigMap.Name]; !ok {
							t.Errorf("%s: volume %s mounts config map %s, which nothing creates", name, v.Name, v.ConfigMap.Name)
						}
					}
				}
			}
			// Every Service selects a pod template that has its target
			// ports.
			for _, s := range m.services {
				var selected []*corev1.PodTemplateSpec
				for _, pod := range m.pods {
					match := len(s.Spec.Selector) > 0
					for k, v := range s.Spec.Selector {
						match = match && pod.Labels[k] == v
					}
					if match {
						selected = append(selected, pod)
					}
				}
				if len(selected) == 0 {
					t.Errorf("Service %s selects no pod", s.Name)
					continue
				}
				for _, p := range s.Spec.Ports {
					target := p.TargetPort.String()
					if target == "0" {
						target = p.Name
					}
					found := false
					for _, c := range selected[0].Spec.Containers {
						for _, cp := range c.Ports {
							found = found || cp.Name == target || (p.TargetPort.IntVal == 0 && cp.ContainerPort == p.Port)
						}
					}
					if !found {
						t.Errorf("Service %s port %s: no container port %s", s.Name, p.Name, target)
					}
				}
			}
		})
	}
	t.Run("kustomizations list files that exist", func(t *testing.T) {
		for _, dir := range []string{"kubernetes/base", "kubernetes/mysql"} {
			b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var k struct {
				Resources          []string                `json:"resources"`
				Patches            []struct{ Path string } `json:"patches"`
				ConfigMapGenerator []struct {
					Files []string `json:"files"`
				} `json:"configMapGenerator"`
			}
			if err := yaml.Unmarshal(b, &k); err != nil {
				t.Fatal(err)
			}
			paths := slices.Clone(k.Resources)
			for _, p := range k.Patches {
				paths = append(paths, p.Path)
			}
			for _, g := range k.ConfigMapGenerator {
				for _, f := range g.Files {
					_, file, _ := strings.Cut(f, "=")
					if !strings.HasPrefix(file, "schema/") { // fetched by fetch-trillian-schemas.sh
						paths = append(paths, file)
					}
				}
			}
			for _, p := range paths {
				if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
					t.Errorf("%s: %v", dir, err)
				}
			}
		}
	})
	t.Run("the PostgreSQL init script is the compose one", func(t *testing.T) {
		a, _ := os.ReadFile("compose/postgres-init.sh")
		b, _ := os.ReadFile("kubernetes/base/postgres-init.sh")
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Error("kubernetes/base/postgres-init.sh differs from compose/postgres-init.sh")
		}
	})
}

// composeFile is the part of a compose file the test checks.
type composeFile struct {
	Services map[string]struct {
		Command   []string `json:"command"`
		DependsOn any      `json:"depends_on"`
		Volumes   []string `json:"volumes"`
	} `json:"services"`
	Volumes map[string]any `json:"volumes"`
}

func TestCompose(t *testing.T) {
	base := readCompose(t, "compose/compose.yaml")
	over := readCompose(t, "compose/compose.mysql.yaml")
	for name, file := range map[string]*composeFile{"compose.yaml": base, "compose.mysql.yaml": over} {
		for svc, s := range file.Services {
			deps := map[string]bool{}
			switch d := s.DependsOn.(type) {
			case []any:
				for _, x := range d {
					deps[x.(string)] = true
				}
			case map[string]any:
				for x := range d {
					deps[x] = true
				}
			}
			for d := range deps {
				_, inBase := base.Services[d]
				_, inFile := file.Services[d]
				if !inBase && !inFile {
					t.Errorf("%s: %s depends on %s, which is not a service", name, svc, d)
				}
			}
			for _, v := range s.Volumes {
				src, _, _ := strings.Cut(v, ":")
				if strings.HasPrefix(src, ".") {
					if _, err := os.Stat(filepath.Join("compose", src)); err != nil && !strings.HasPrefix(src, "./schema") {
						t.Errorf("%s: %s mounts %s: %v", name, svc, src, err)
					}
					continue
				}
				_, inBase := base.Volumes[src]
				_, inFile := file.Volumes[src]
				if !inBase && !inFile {
					t.Errorf("%s: %s mounts the volume %s, which is not declared", name, svc, src)
				}
			}
			if svc == "undersigned-first" {
				for _, a := range s.Command[1:] {
					flag, _, _ := strings.Cut(a, "=")
					if !slices.Contains(undersignedFlags, flag) {
						t.Errorf("%s: undersigned-server has no flag %s", name, flag)
					}
				}
			}
		}
	}
	nginx, err := os.ReadFile("compose/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`server ([a-z-]+):`).FindAllStringSubmatch(string(nginx), -1) {
		if _, ok := base.Services[m[1]]; !ok {
			t.Errorf("nginx.conf sends to %s, which is not a service", m[1])
		}
	}
}

func readCompose(t *testing.T, path string) *composeFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(c.Services) == 0 {
		t.Fatalf("%s: no services", path)
	}
	return &c
}
