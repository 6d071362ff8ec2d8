package runner

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fwpush/fwpush/runner/remote"
	"github.com/fwpush/fwpush/runner/remote/remotetest"
)

// TestFakeCases: the fake host answers every case of remotetest as the
// scripts do, the cases runner/remote's TestCases runs the real scripts
// through on a stub host. A behaviour of the scripts that changes there
// fails here until the fake follows.
func TestFakeCases(t *testing.T) {
	t.Parallel()
	for _, c := range remotetest.Cases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			h := newCaseHost(t, c.Host)
			conn := h.open(func() error { return nil })
			defer conn.Close()
			remotetest.Run(t, remotetest.Driver{
				Facts: conn.Facts,
				Apply: func(ctx context.Context, st remotetest.Step) error {
					return conn.Apply(ctx, remote.Apply{Token: st.Token, RollbackAfter: remotetest.RollbackAfter, V4: st.V4, V6: st.V6,
						Lease: remotetest.Lease, LockWait: st.LockWaitOr(), Who: remotetest.Who})
				},
				Confirm: func(ctx context.Context, st remotetest.Step) (string, string, error) {
					conf, err := conn.Confirm(ctx, remote.Confirm{Token: st.Token, Wait: remotetest.ConfirmWait, Persist: stepPersist(st)})
					return string(conf.Outcome), conf.Log, err
				},
				Persist: func(ctx context.Context, st remotetest.Step) error { return conn.Persist(ctx, stepPersist(st)) },
				Settle: func(ctx context.Context, st remotetest.Step) (string, error) {
					o, err := conn.Settle(ctx, st.Token, st.Keep)
					return string(o), err
				},
				FireGuard: h.fireGuard,
				EndLease: func(token string) {
					h.set(func(h *fakeHost) {
						if h.lock == nil || h.lock.token != token {
							t.Fatalf("run %s does not hold the lock: %+v", token, h.lock)
						}
						h.lock.expires = time.Now().Add(-time.Second)
					})
				},
				Failed: func(err error) (string, bool, bool) {
					var se *remote.StepError
					if !errors.As(err, &se) {
						return "", false, false
					}
					return se.Step, se.NothingChanged, true
				},
				State: h.caseState,
			}, c)
		})
	}
}

func stepPersist(st remotetest.Step) remote.Persist {
	return remote.Persist{V4: st.V4, V6: st.V6, Digest: st.Digest, Install: st.Install}
}

// newCaseHost is a fake host in the state hs says, alone in its fleet.
func newCaseHost(t *testing.T, hs remotetest.Host) *fakeHost {
	t.Helper()
	f := newFleet(t, "")
	h := &fakeHost{t: t, fleet: f, name: "stub", files: map[string]string{}, writes: map[string]int{},
		live4: hs.V4, live6: hs.V6, persistent: hs.Persistent, applyDelay: 20 * time.Millisecond}
	f.hosts[h.name] = h
	for path, content := range map[string]string{fileRulesV4: hs.Rules4, fileRulesV6: hs.Rules6, fileApplied: hs.Applied} {
		if content != "" {
			h.files[path] = content
		}
	}
	if l := hs.Lock; l != nil {
		h.lock = &fakeLock{token: l.Token, who: l.Who, expires: time.Now().Add(time.Hour)}
		if l.Expired {
			h.lock.expires = time.Now().Add(-time.Minute)
		}
	}
	return h
}

// caseState is the host as remotetest.Host says it.
func (h *fakeHost) caseState() remotetest.Host {
	h.mu.Lock()
	defer h.mu.Unlock()
	hs := remotetest.Host{V4: h.live4, V6: h.live6, Rules4: h.files[fileRulesV4], Rules6: h.files[fileRulesV6],
		Applied: h.files[fileApplied], Persistent: h.persistent}
	if h.lock != nil {
		hs.Lock = &remotetest.Lock{Token: h.lock.token, Who: h.lock.who}
	}
	return hs
}
