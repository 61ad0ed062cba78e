package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// browser is headless Chromium in a lab namespace, driven over the DevTools
// protocol on a pipe (--remote-debugging-pipe: commands on its fd 3, answers
// on its fd 4, each message JSON ended by a NUL byte), so that a test can
// load a page, press a button as a person would, and read what the page
// shows. Only Debian's chromium is needed, no driver.
type browser struct {
	cmd     *exec.Cmd
	in      *os.File // our end of its fd 3
	session string   // the page's session (Target.attachToTarget, flat)

	mu      sync.Mutex
	nextID  int                   // protected by mu
	waiting map[int]chan cdpReply // protected by mu
	dead    error                 // why the pipe ended; protected by mu
	done    chan struct{}         // closed when the reader ends
	errMu   sync.Mutex            // guards stderr
	stderr  strings.Builder       // Chromium's own log, for failures; protected by errMu
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// newBrowser starts Chromium in namespace name with the lab's flags and a
// fresh profile, and attaches to its page. It is stopped at the test's end.
func newBrowser(t *testing.T, name string) *browser {
	t.Helper()
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Fatal("chromium is missing: install Debian's chromium (make deps)")
	}
	cmdR, inW, err := os.Pipe() // Chromium reads commands from cmdR (its fd 3)
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe() // and writes answers to outW (its fd 4)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"netns", "exec", nsName(name), "env", "HOME=" + t.TempDir(), "chromium",
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--user-data-dir=" + t.TempDir(), "--window-size=390,844",
		"--remote-debugging-pipe", "about:blank"}
	b := &browser{cmd: exec.Command("ip", args...), in: inW, waiting: map[int]chan cdpReply{}, done: make(chan struct{})}
	b.cmd.ExtraFiles = []*os.File{cmdR, outW}
	b.cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		b.errMu.Lock()
		defer b.errMu.Unlock()
		if b.stderr.Len() < 16<<10 {
			b.stderr.Write(p)
		}
		return len(p), nil
	})
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start chromium in %s: %v", name, err)
	}
	cmdR.Close()
	outW.Close()
	go b.read(outR)
	t.Cleanup(func() {
		b.in.Close()
		b.cmd.Process.Kill()
		b.cmd.Wait()
		<-b.done
	})

	var targets struct {
		TargetInfos []struct {
			TargetID string `json:"targetId"`
			Type     string `json:"type"`
		} `json:"targetInfos"`
	}
	b.call(t, "", "Target.getTargets", nil, &targets)
	id := ""
	for _, ti := range targets.TargetInfos {
		if ti.Type == "page" {
			id = ti.TargetID
		}
	}
	if id == "" {
		var created struct {
			TargetID string `json:"targetId"`
		}
		b.call(t, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &created)
		id = created.TargetID
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	b.call(t, "", "Target.attachToTarget", map[string]any{"targetId": id, "flatten": true}, &att)
	b.session = att.SessionID
	b.call(t, b.session, "Page.enable", nil, nil)
	return b
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// read hands each answer to its caller; events are dropped.
func (b *browser) read(r *os.File) {
	defer close(b.done)
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		msg, err := br.ReadBytes(0)
		if err != nil {
			b.mu.Lock()
			b.dead = fmt.Errorf("chromium's pipe ended: %w", err)
			for id, ch := range b.waiting {
				close(ch)
				delete(b.waiting, id)
			}
			b.mu.Unlock()
			return
		}
		var m struct {
			ID *int `json:"id"`
			cdpReply
		}
		if json.Unmarshal(msg[:len(msg)-1], &m) != nil || m.ID == nil {
			continue
		}
		b.mu.Lock()
		ch := b.waiting[*m.ID]
		delete(b.waiting, *m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m.cdpReply
		}
	}
}

// call sends method with params in session ("" for the browser) and decodes
// the result into out (nil: ignored); an error fails the test.
func (b *browser) call(t *testing.T, session, method string, params any, out any) {
	t.Helper()
	if err := b.try(session, method, params, out); err != nil {
		b.errMu.Lock()
		log := b.stderr.String()
		b.errMu.Unlock()
		t.Fatalf("chromium %s: %v\nchromium's log:\n%s", method, err, log)
	}
}

func (b *browser) try(session, method string, params any, out any) error {
	b.mu.Lock()
	if b.dead != nil {
		b.mu.Unlock()
		return b.dead
	}
	b.nextID++
	id := b.nextID
	ch := make(chan cdpReply, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	data, _ := json.Marshal(msg)
	if _, err := b.in.Write(append(data, 0)); err != nil {
		return fmt.Errorf("write to chromium: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	select {
	case r, ok := <-ch:
		if !ok {
			return errors.New("chromium's pipe ended")
		}
		if r.Error != nil {
			return errors.New(r.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("no answer in %v", cmdTimeout)
	}
}

// navigate loads url in the page (it does not wait for the load: see waitJS).
func (b *browser) navigate(t *testing.T, url string) {
	t.Helper()
	var r struct {
		ErrorText string `json:"errorText"`
	}
	b.call(t, b.session, "Page.navigate", map[string]any{"url": url}, &r)
	if r.ErrorText != "" {
		t.Fatalf("chromium: load %s: %s", url, r.ErrorText)
	}
}

// eval evaluates the JavaScript expression expr in the page and returns its
// value as JSON; the DevTools protocol runs it outside the page's
// Content-Security-Policy, as a person's hand would act.
func (b *browser) eval(expr string) (json.RawMessage, error) {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := b.try(b.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r); err != nil {
		return nil, err
	}
	if r.ExceptionDetails != nil {
		return nil, fmt.Errorf("%s: %s", expr, r.ExceptionDetails.Text)
	}
	return r.Result.Value, nil
}

// waitJS waits until the expression cond is true in the page.
func (b *browser) waitJS(t *testing.T, desc string, timeout time.Duration, cond string) {
	t.Helper()
	waitFor(t, desc, timeout, func() error {
		v, err := b.eval(cond)
		if err != nil {
			return err
		}
		if string(v) != "true" {
			at, _ := b.eval(`location.href + ": " + (document.body ? document.body.innerText.slice(0, 300) : "")`)
			return fmt.Errorf("%s is %s at %s", cond, v, at)
		}
		return nil
	})
}

// click clicks the element with id as a person would (a real click event:
// a form's button submits the form from the page's own origin).
func (b *browser) click(t *testing.T, id string) {
	t.Helper()
	if _, err := b.eval(fmt.Sprintf("document.getElementById(%q).click(), true", id)); err != nil {
		t.Fatalf("chromium: click #%s: %v", id, err)
	}
}

// text is the text of the element with id in the page, "" if there is none.
func (b *browser) text(t *testing.T, id string) string {
	t.Helper()
	v, err := b.eval(fmt.Sprintf("(document.getElementById(%q) || {}).textContent || ''", id))
	if err != nil {
		t.Fatalf("chromium: read #%s: %v", id, err)
	}
	var s string
	json.Unmarshal(v, &s)
	return s
}
