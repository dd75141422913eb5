package ledger

import (
	"runtime"
	"sync"
)

// Signature checks run on a few long-lived goroutines rather than on the
// request's own. Checking an Ed25519 signature needs a deep stack (its
// lookup tables live there); a request's goroutine starts with a small one,
// so under load the runtime grew and copied a stack for nearly every write
// (about 5% of the write path's CPU in the C = 1,000 profile), and the
// collector scanned a thousand deep stacks instead of a handful. The
// checkers keep theirs between checks.
var checkers struct {
	once sync.Once
	jobs chan *checkJob
}

type checkJob struct {
	f    func() error
	err  error
	done chan struct{}
}

var checkJobs = sync.Pool{New: func() any { return &checkJob{done: make(chan struct{}, 1)} }}

// check runs f, which checks signatures, on a checker goroutine and returns
// its error. It waits for a free checker: the writes in flight are bounded
// before this, so the wait is too.
func check(f func() error) error {
	checkers.once.Do(func() {
		n := runtime.GOMAXPROCS(0)
		checkers.jobs = make(chan *checkJob, n)
		for range n {
			go checker()
		}
	})
	j := checkJobs.Get().(*checkJob)
	j.f = f
	checkers.jobs <- j
	<-j.done
	err := j.err
	j.f, j.err = nil, nil
	checkJobs.Put(j)
	return err
}

func checker() {
	for j := range checkers.jobs {
		j.err = j.f()
		j.done <- struct{}{}
	}
}
