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
	networkingv1 "k8s.io/api/networking/v1"
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
	policies []*networkingv1.NetworkPolicy
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
			case "NetworkPolicy":
				obj = &networkingv1.NetworkPolicy{}
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
			case *networkingv1.NetworkPolicy:
				m.policies = append(m.policies, o)
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
		// The frontends' data folder: the key, log.pub and the dedup
		// secret, never the first organiser token.
		"undersigned-data": {"log.key", "log.pub", "dedup.secret"},
		"postgres-tls":     {"ca.crt", "tls.crt", "tls.key"},
		"trillian-tls":     {"ca.crt", "tls.crt", "tls.key"},
	}
	configMaps = map[string][]string{
		"undersigned":   {"origin", "tree-id"},
		"postgres-init": {"init.sh", "pg_hba.conf", "postgresql.sql"},
		"mysql-init":    {"mysql.sql"},
	}
)

// undersignedFlags are the flags of `undersigned-server serve` the
// manifests may use.
var undersignedFlags = []string{"--data", "--state", "--grpc", "--http", "--origin", "--trillian", "--tree-id", "--postgres",
	"--trillian-tls-ca", "--trillian-tls-cert", "--trillian-tls-key", "--trillian-tls-server-name", "--max-connections-per-address"}

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
						keys, ok := secrets[v.Secret.SecretName]
						if !ok {
							t.Errorf("%s: volume %s mounts secret %s, which README.md does not create", name, v.Name, v.Secret.SecretName)
						}
						// Every key of a Secret is mounted only when it is
						// listed: a Secret holds nothing a pod does not need.
						if len(v.Secret.Items) == 0 {
							t.Errorf("%s: volume %s mounts every key of secret %s: list the ones the pod needs", name, v.Name, v.Secret.SecretName)
						}
						for _, it := range v.Secret.Items {
							if !slices.Contains(keys, it.Key) {
								t.Errorf("%s: volume %s mounts key %s of secret %s, which README.md does not create", name, v.Name, it.Key, v.Secret.SecretName)
							}
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

// TestKubernetesExposure checks what issue 17 asked of the manifests: no
// password and no plaintext database connection on any command line, the
// frontends given the key and secrets but not the first organiser token,
// probes that take a frontend that stopped signing out of service without
// restarting it, and network policies that let nothing but the frontends'
// ports be reached from outside, Trillian's log server only from the
// frontends, PostgreSQL and etcd only from what uses them.
func TestKubernetesExposure(t *testing.T) {
	m := decode(t, "kubernetes/base")
	for name, pod := range m.pods {
		for _, c := range pod.Spec.Containers {
			for _, a := range append(slices.Clone(c.Command), c.Args...) {
				if strings.Contains(a, "PASSWORD)") || strings.Contains(a, "sslmode=disable") {
					t.Errorf("%s: container %s has %q on its command line: a password or a plaintext database connection", name, c.Name, a)
				}
			}
			if c.Name != "undersigned" {
				continue
			}
			if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
				t.Errorf("%s: the frontend's readiness probe is not /healthz", name)
			}
			if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/livez" {
				t.Errorf("%s: the frontend's liveness probe is not /livez: a frontend that stopped signing would be restarted, its evidence lost", name)
			}
			if !slices.Contains(c.Args, "--state=/state") {
				t.Errorf("%s: the frontend keeps no state volume (--state)", name)
			}
		}
		for _, v := range pod.Spec.Volumes {
			if v.Secret != nil && v.Secret.SecretName == "undersigned-data" {
				var keys []string
				for _, it := range v.Secret.Items {
					keys = append(keys, it.Key)
				}
				slices.Sort(keys)
				if strings.Join(keys, ",") != "dedup.secret,log.key,log.pub" {
					t.Errorf("%s: the data folder holds %v, want the key, log.pub and the dedup secret only", name, keys)
				}
			}
		}
	}
	// The policies: a default deny, and who reaches what.
	allows := map[string]map[string][]int32{} // target app -> source app ("*" anyone) -> ports
	deny := false
	for _, p := range m.policies {
		sel := p.Spec.PodSelector.MatchLabels["app"]
		if len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.PodSelector.MatchExpressions) == 0 {
			if len(p.Spec.Ingress) == 0 && slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
				deny = true
				continue
			}
			t.Errorf("NetworkPolicy %s selects every pod and allows some ingress", p.Name)
		}
		if allows[sel] == nil {
			allows[sel] = map[string][]int32{}
		}
		for _, rule := range p.Spec.Ingress {
			var ports []int32
			for _, port := range rule.Ports {
				ports = append(ports, port.Port.IntVal)
			}
			if len(rule.From) == 0 {
				allows[sel]["*"] = append(allows[sel]["*"], ports...)
			}
			for _, from := range rule.From {
				if from.IPBlock != nil || from.NamespaceSelector != nil || from.PodSelector == nil || from.PodSelector.MatchLabels["app"] == "" {
					t.Errorf("NetworkPolicy %s lets in more than pods of this namespace named by app", p.Name)
					continue
				}
				src := from.PodSelector.MatchLabels["app"]
				allows[sel][src] = append(allows[sel][src], ports...)
			}
		}
	}
	if !deny {
		t.Error("no NetworkPolicy denies ingress to every pod by default")
	}
	for target, sources := range allows {
		for src := range sources {
			if src == "*" && target != "undersigned" {
				t.Errorf("%s can be reached from anywhere", target)
			}
		}
	}
	for _, want := range []struct {
		target, source string
		port           int32
	}{
		{"undersigned", "*", 7420}, {"undersigned", "*", 7421},
		{"trillian-log-server", "undersigned", 8090},
		{"postgres", "undersigned", 5432}, {"postgres", "trillian-log-server", 5432}, {"postgres", "trillian-log-signer", 5432},
		{"etcd", "trillian-log-signer", 2379},
	} {
		if !slices.Contains(allows[want.target][want.source], want.port) {
			t.Errorf("no NetworkPolicy lets %s reach %s:%d", want.source, want.target, want.port)
		}
	}
	if srcs := allows["trillian-log-server"]; len(srcs) != 2 || srcs["createtree"] == nil {
		t.Errorf("trillian_log_server (no authentication, the admin API) is reached by %v, want only the frontends and the createtree Job", srcs)
	}
}

// composeFile is the part of a compose file the test checks.
type composeFile struct {
	Services map[string]struct {
		Command     []string `json:"command"`
		DependsOn   any      `json:"depends_on"`
		Volumes     []string `json:"volumes"`
		Networks    []string `json:"networks"`
		Ports       []string `json:"ports"`
		Profiles    []string `json:"profiles"`
		Healthcheck struct {
			Test []string `json:"test"`
		} `json:"healthcheck"`
	} `json:"services"`
	Volumes  map[string]any `json:"volumes"`
	Networks map[string]struct {
		Internal bool `json:"internal"`
	} `json:"networks"`
}

// operatorMade are the files the operator makes beside the compose file
// (see README.md): Trillian's schemas, the data folder, the certificates.
var operatorMade = []string{"./schema", "./data", "./tls/"}

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
					made := slices.ContainsFunc(operatorMade, func(p string) bool { return strings.HasPrefix(src, p) })
					if _, err := os.Stat(filepath.Join("compose", src)); err != nil && !made {
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
			for _, n := range s.Networks {
				if _, ok := base.Networks[n]; !ok {
					t.Errorf("%s: %s is on the network %s, which is not declared", name, svc, n)
				}
			}
			if len(s.Command) > 0 && s.Command[0] == "serve" {
				for _, a := range s.Command[1:] {
					flag, _, _ := strings.Cut(a, "=")
					if !slices.Contains(undersignedFlags, flag) {
						t.Errorf("%s: %s: undersigned-server has no flag %s", name, svc, flag)
					}
				}
			}
		}
	}
	checkComposeExposure(t, base)
	cfg, err := os.ReadFile("compose/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	servers := regexp.MustCompile(`(?m)^\s*server \S+ ([a-z-]+):(\d+)`).FindAllStringSubmatch(string(cfg), -1)
	if len(servers) == 0 {
		t.Error("haproxy.cfg sends to no server")
	}
	for _, m := range servers {
		if _, ok := base.Services[m[1]]; !ok {
			t.Errorf("haproxy.cfg sends to %s, which is not a service", m[1])
		}
	}
	if strings.Count(string(cfg), "option httpchk GET /healthz") != 2 {
		t.Error("haproxy.cfg does not check both backends on /healthz")
	}
}

// checkComposeExposure checks what issue 17 asked of the compose file:
// Trillian, PostgreSQL and etcd on an internal network only, nothing but
// the load balancer publishing ports, no password on a command line, and
// frontends given the key and secrets (not the first organiser token), a
// state volume each, and a health check on /healthz.
func checkComposeExposure(t *testing.T, c *composeFile) {
	t.Helper()
	for _, n := range []string{"backend", "edge"} {
		if !c.Networks[n].Internal {
			t.Errorf("compose.yaml: the network %s is not internal", n)
		}
	}
	states := map[string]string{}
	frontends := 0
	for svc, s := range c.Services {
		if len(s.Ports) > 0 && svc != "lb" {
			t.Errorf("compose.yaml: %s publishes ports", svc)
		}
		for _, a := range s.Command {
			if strings.Contains(a, "PASSWORD}") || strings.Contains(a, "sslmode=disable") {
				t.Errorf("compose.yaml: %s has %q on its command line: a password or a plaintext database connection", svc, a)
			}
		}
		switch svc {
		case "postgres", "etcd", "trillian-log-server", "trillian-log-signer":
			if !slices.Equal(s.Networks, []string{"backend"}) {
				t.Errorf("compose.yaml: %s is on %v, want the internal backend network only", svc, s.Networks)
			}
		}
		if len(s.Command) == 0 || s.Command[0] != "serve" || slices.Contains(s.Profiles, "setup") {
			continue
		}
		frontends++
		if !slices.Contains(s.Healthcheck.Test, "http://127.0.0.1:7421/healthz") {
			t.Errorf("compose.yaml: %s's health check is not /healthz: %v", svc, s.Healthcheck.Test)
		}
		var data []string
		for _, v := range s.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			dst, _, _ = strings.Cut(dst, ":")
			switch {
			case strings.HasPrefix(src, "./data"):
				data = append(data, filepath.Base(src))
			case dst == "/state":
				if other, ok := states[src]; ok {
					t.Errorf("compose.yaml: %s and %s share the state volume %s", svc, other, src)
				}
				states[src] = svc
			}
		}
		slices.Sort(data)
		if strings.Join(data, ",") != "dedup.secret,log.key,log.pub" {
			t.Errorf("compose.yaml: %s mounts %v of the data folder, want the key, log.pub and the dedup secret only", svc, data)
		}
	}
	if frontends < 2 || len(states) != frontends {
		t.Errorf("compose.yaml: %d frontends with %d state volumes, want one each", frontends, len(states))
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
