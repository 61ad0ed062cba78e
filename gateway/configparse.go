package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
)

type parser struct {
	file string
	errs []error
}

func (p *parser) errorf(line int, key, expected, format string, args ...any) {
	p.errs = append(p.errs, &ConfigError{File: p.file, Line: line, Key: key, Problem: fmt.Sprintf(format, args...), Expected: expected})
}

func parseConfig(name string, data []byte) (*Config, error) {
	p := &parser{file: name}
	c := &Config{
		File:          name,
		Name:          DefaultName,
		MTU:           DefaultMTU,
		ClampMode:     ClampAuto,
		KillSwitch:    true,
		MetricsListen: DefaultMetricsListen,
	}
	seenSection := map[string]int{}
	seenKey := map[string]int{} // "section/key" -> line
	section := ""
	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		lines++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				p.errorf(lines, "", "a section header such as [Interface], [Peer] or [Gateway]", "%q is not a section header", line)
				section = "?"
				continue
			}
			s := strings.ToLower(strings.TrimSpace(line[1 : len(line)-1]))
			if _, ok := sections[s]; !ok {
				p.errorf(lines, "", "one of [Interface], [Peer], [Gateway]", "unknown section %q", line)
				section = "?"
				continue
			}
			if prev, dup := seenSection[s]; dup {
				what := "each section once"
				if s == "peer" {
					what = "exactly one [Peer], the home router"
				}
				p.errorf(lines, "", what, "section [%s] repeated (first at line %d)", sectionNames[s], prev)
				section = "?"
				continue
			}
			seenSection[s] = lines
			section = s
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			p.errorf(lines, "", "key = value", "%q is not a key = value line", line)
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if section == "?" {
			continue // already reported
		}
		if section == "" {
			p.errorf(lines, k, "keys inside [Interface], [Peer] or [Gateway]", "key outside any section")
			continue
		}
		def, ok := findKey(section, k)
		if !ok {
			exp := "one of " + keyList(section)
			if h, ok := hints[section+"/"+strings.ToLower(k)]; ok {
				exp = h
			}
			p.errorf(lines, k, exp, "unknown key in [%s]", sectionNames[section])
			continue
		}
		id := section + "/" + strings.ToLower(def.name)
		if prev, dup := seenKey[id]; dup {
			p.errorf(lines, def.name, "each key once; put list values on one line, separated by commas", "set again (first at line %d)", prev)
			continue
		}
		seenKey[id] = lines
		if v == "" && def.name != "MetricsListen" && def.name != "HomeNetworks" {
			p.errorf(lines, def.name, "a value, or remove the line for the default", "empty value")
			continue
		}
		if problem, expected := def.parse(p, c, v); problem != "" {
			p.errorf(lines, def.name, expected, "%s", problem)
		}
	}
	if err := sc.Err(); err != nil {
		p.errorf(lines+1, "", "a text file with lines shorter than 1 MiB", "cannot read: %v", err)
	}
	// Missing sections and keys.
	for _, s := range []string{"interface", "peer", "gateway"} {
		at, ok := seenSection[s]
		if !ok {
			p.errorf(max(lines, 1), "", "add a ["+sectionNames[s]+"] section", "section [%s] missing", sectionNames[s])
			continue
		}
		for _, k := range required[s] {
			if _, ok := seenKey[s+"/"+strings.ToLower(k)]; !ok {
				p.errorf(at, k, "add it to ["+sectionNames[s]+"]", "required key missing")
			}
		}
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	line := func(s, k string) int {
		if l, ok := seenKey[s+"/"+strings.ToLower(k)]; ok {
			return l
		}
		return seenSection[s]
	}
	_, hasKey := seenKey["interface/privatekey"]
	_, hasFile := seenKey["interface/privatekeyfile"]
	switch {
	case hasKey && hasFile:
		p.errorf(line("interface", "PrivateKeyFile"), "PrivateKeyFile", "either PrivateKey or PrivateKeyFile", "set together with PrivateKey (line %d)", line("interface", "PrivateKey"))
	case !hasKey && !hasFile:
		p.errorf(seenSection["interface"], "PrivateKeyFile", "add PrivateKeyFile = /var/lib/fobgw/private.key (made on the first run) or PrivateKey", "required key missing")
	}
	if _, ok := seenKey["gateway/probe"]; !ok {
		c.Probe = c.DNSUpstream
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	if err := c.validate(line); err != nil {
		return nil, err
	}
	return c, nil
}
