package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/fobgw/fobgw/portal"
)

// parser collects the errors of a configuration, all reported at once.
type parser struct {
	file string
	errs []error
}

func (p *parser) errorf(line int, key, expected, format string, args ...any) {
	p.errs = append(p.errs, &ConfigError{File: p.file, Line: line, Key: key, Problem: fmt.Sprintf(format, args...), Expected: expected})
}

// lexer reads the file's lines (wg-quick's INI: [Section] headers and
// "Key = Value" lines, '#' comments) into a Config through the key table.
type lexer struct {
	*parser
	c           *Config
	section     string         // lower case; "" before the first header, "?" after a bad one
	seenSection map[string]int // section -> line
	seenKey     map[string]int // "section/key" -> line
	lines       int
}

func parseConfig(name string, data []byte) (*Config, error) {
	l := &lexer{
		parser: &parser{file: name},
		c: &Config{
			File:          name,
			Name:          DefaultName,
			ClampMode:     ClampAuto,
			KillSwitch:    true,
			MetricsListen: DefaultMetricsListen,
			PortalCheck:   portal.DefaultCheck,
		},
		seenSection: map[string]int{},
		seenKey:     map[string]int{},
	}
	l.lex(data)
	l.checkRequired()
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	l.checkPrivateKey()
	if _, ok := l.seenKey["gateway/probe"]; !ok {
		l.c.Probe = l.c.DNSUpstream
	}
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	if err := l.c.validate(l.line); err != nil {
		return nil, err
	}
	return l.c, nil
}

// lex reads every line.
func (l *lexer) lex(data []byte) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		l.lines++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "["):
			l.header(line)
		default:
			l.keyLine(line)
		}
	}
	if err := sc.Err(); err != nil {
		l.errorf(l.lines+1, "", "a text file with lines shorter than 1 MiB", "cannot read: %v", err)
	}
}

// header starts the section a "[Name]" line names.
func (l *lexer) header(line string) {
	l.section = "?"
	if !strings.HasSuffix(line, "]") {
		l.errorf(l.lines, "", "a section header such as [Interface], [Peer] or [Gateway]", "%q is not a section header", line)
		return
	}
	s := strings.ToLower(strings.TrimSpace(line[1 : len(line)-1]))
	if _, ok := sections[s]; !ok {
		l.errorf(l.lines, "", "one of [Interface], [Peer], [Gateway]", "unknown section %q", line)
		return
	}
	if prev, dup := l.seenSection[s]; dup {
		what := "each section once"
		if s == "peer" {
			what = "exactly one [Peer], the home router"
		}
		l.errorf(l.lines, "", what, "section [%s] repeated (first at line %d)", sectionNames[s], prev)
		return
	}
	l.seenSection[s] = l.lines
	l.section = s
}

// keyLine sets the key of a "Key = Value" line through its parser.
func (l *lexer) keyLine(line string) {
	k, v, ok := strings.Cut(line, "=")
	if !ok {
		l.errorf(l.lines, "", "key = value", "%q is not a key = value line", line)
		return
	}
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	switch l.section {
	case "?":
		return // already reported
	case "":
		l.errorf(l.lines, k, "keys inside [Interface], [Peer] or [Gateway]", "key outside any section")
		return
	}
	def, ok := findKey(l.section, k)
	if !ok {
		exp := "one of " + keyList(l.section)
		if h, ok := hints[l.section+"/"+strings.ToLower(k)]; ok {
			exp = h
		}
		l.errorf(l.lines, k, exp, "unknown key in [%s]", sectionNames[l.section])
		return
	}
	id := l.section + "/" + strings.ToLower(def.name)
	if prev, dup := l.seenKey[id]; dup {
		l.errorf(l.lines, def.name, "each key once; put list values on one line, separated by commas", "set again (first at line %d)", prev)
		return
	}
	l.seenKey[id] = l.lines
	if v == "" && !slices.Contains(emptyAllowed, def.name) {
		l.errorf(l.lines, def.name, "a value, or remove the line for the default", "empty value")
		return
	}
	if problem, expected := def.parse(l.parser, l.c, v); problem != "" {
		l.errorf(l.lines, def.name, expected, "%s", problem)
	}
}

// emptyAllowed are the keys whose empty value means none.
var emptyAllowed = []string{"MetricsListen", "StatusListen", "HomeNetworks", "Bypass", "LocalDomains"}

// checkRequired reports missing sections and required keys.
func (l *lexer) checkRequired() {
	for _, s := range []string{"interface", "peer", "gateway"} {
		at, ok := l.seenSection[s]
		if !ok {
			l.errorf(max(l.lines, 1), "", "add a ["+sectionNames[s]+"] section", "section [%s] missing", sectionNames[s])
			continue
		}
		for _, k := range required[s] {
			if _, ok := l.seenKey[s+"/"+strings.ToLower(k)]; !ok {
				l.errorf(at, k, "add it to ["+sectionNames[s]+"]", "required key missing")
			}
		}
	}
}

// checkPrivateKey reports PrivateKey and PrivateKeyFile both set, or neither.
func (l *lexer) checkPrivateKey() {
	_, hasKey := l.seenKey["interface/privatekey"]
	_, hasFile := l.seenKey["interface/privatekeyfile"]
	switch {
	case hasKey && hasFile:
		l.errorf(l.line("interface", "PrivateKeyFile"), "PrivateKeyFile", "either PrivateKey or PrivateKeyFile", "set together with PrivateKey (line %d)", l.line("interface", "PrivateKey"))
	case !hasKey && !hasFile:
		l.errorf(l.seenSection["interface"], "PrivateKeyFile", "add PrivateKeyFile = /var/lib/fobgw/private.key (made on the first run) or PrivateKey", "required key missing")
	}
}

// line is the line of key in section, or of the section's header when the
// key is not set there.
func (l *lexer) line(s, k string) int {
	if n, ok := l.seenKey[s+"/"+strings.ToLower(k)]; ok {
		return n
	}
	return l.seenSection[s]
}
