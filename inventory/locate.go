package inventory

import (
	"strconv"
	"strings"
)

// keyLines maps every key of a TOML document to the line it is written on,
// so that validation errors can name a line. BurntSushi/toml keeps key
// positions private, so this is a small scanner of its own. It only has to
// follow well-formed TOML (the parser has already accepted the document) and
// it must never panic on anything else: on input it does not understand it
// stops and returns what it has found.
//
// Paths are dotted ("hosts.mysql-1.private_ip") and quoted parts are
// unquoted; table headers map to their own path, and the tables a header or
// a dotted key goes through to the line that first names them; elements of
// arrays get an index ("roles.app.allow[1].from") and, for the first
// occurrence, an index-free alias ("roles.app.allow.from"), which is how
// toml.MetaData names keys inside arrays.
func keyLines(src string) (lines map[string]int) {
	s := newScanner(src)
	// A scanner bug must cost a line number, never a crash, nor the lines
	// already found.
	defer func() {
		_ = recover()
		lines = s.lines
	}()
	s.document()
	return s.lines
}

func newScanner(src string) *scanner {
	return &scanner{src: src, line: 1, lines: map[string]int{}, arrayTables: map[string]int{}}
}

type scanner struct {
	src         string
	pos         int
	line        int
	lines       map[string]int
	arrayTables map[string]int
}

func (s *scanner) peek() byte {
	if s.pos < len(s.src) {
		return s.src[s.pos]
	}
	return 0
}

func (s *scanner) next() byte {
	c := s.peek()
	if c == '\n' {
		s.line++
	}
	if s.pos < len(s.src) {
		s.pos++
	}
	return c
}

func (s *scanner) eof() bool { return s.pos >= len(s.src) }

// skip skips blanks and comments, and newlines too when nl is set.
func (s *scanner) skip(nl bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.next()
		case c == '\n' && nl:
			s.next()
		case c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.next()
			}
		default:
			return
		}
	}
}

func (s *scanner) record(path string) {
	if _, ok := s.lines[path]; !ok {
		s.lines[path] = s.line
	}
	if alias := stripIndexes(path); alias != path {
		if _, ok := s.lines[alias]; !ok {
			s.lines[alias] = s.line
		}
	}
}

func (s *scanner) document() {
	table := ""
	for {
		s.skip(true)
		if s.eof() {
			return
		}
		if s.peek() == '[' {
			s.next()
			array := s.peek() == '['
			if array {
				s.next()
			}
			s.skip(false)
			parts, ok := s.key()
			if !ok {
				return
			}
			key := strings.Join(parts, ".")
			s.skip(false)
			if s.next() != ']' || (array && s.next() != ']') {
				return
			}
			table = ""
			for _, part := range parts[:len(parts)-1] {
				table = join(table, part)
				s.record(table)
			}
			table = key
			if array {
				n := s.arrayTables[key]
				s.arrayTables[key] = n + 1
				table = key + "[" + strconv.Itoa(n) + "]"
			}
			s.record(table)
			continue
		}
		if !s.keyValue(table) {
			return
		}
	}
}

// keyValue scans `key = value` under prefix. A dotted key also defines
// the tables it goes through, which get the line of their first key.
func (s *scanner) keyValue(prefix string) bool {
	key, ok := s.key()
	if !ok {
		return false
	}
	path := prefix
	for _, part := range key {
		path = join(path, part)
		s.record(path)
	}
	s.skip(false)
	if s.next() != '=' {
		return false
	}
	s.skip(false)
	return s.value(path)
}

// key scans a possibly dotted, possibly quoted key into its parts.
func (s *scanner) key() ([]string, bool) {
	var out []string
	for {
		s.skip(false)
		var part string
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			str, ok := s.str()
			if !ok {
				return nil, false
			}
			part = str
			if c == '"' {
				part = unescape(str)
			}
		case isBare(c):
			start := s.pos
			for isBare(s.peek()) {
				s.next()
			}
			part = s.src[start:s.pos]
		default:
			return nil, false
		}
		out = append(out, part)
		s.skip(false)
		if s.peek() != '.' {
			return out, true
		}
		s.next()
	}
}

func (s *scanner) value(path string) bool {
	switch s.peek() {
	case '[':
		s.next()
		for i := 0; ; i++ {
			s.skip(true)
			if s.peek() == ']' {
				s.next()
				return true
			}
			elem := path + "[" + strconv.Itoa(i) + "]"
			s.record(elem)
			if !s.value(elem) {
				return false
			}
			s.skip(true)
			switch s.next() {
			case ',':
			case ']':
				return true
			default:
				return false
			}
		}
	case '{':
		// TOML 1.1, which the parser accepts, allows newlines and comments
		// inside inline tables.
		s.next()
		for {
			s.skip(true)
			if s.peek() == '}' {
				s.next()
				return true
			}
			if !s.keyValue(path) {
				return false
			}
			s.skip(true)
			switch s.next() {
			case ',':
			case '}':
				return true
			default:
				return false
			}
		}
	case '"', '\'':
		_, ok := s.str()
		return ok
	default:
		start := s.pos
		for !s.eof() {
			c := s.peek()
			if c == ',' || c == ']' || c == '}' || c == '\n' || c == '#' {
				break
			}
			s.next()
		}
		return s.pos > start
	}
}

// str scans a basic, literal or multi-line string and returns its raw body
// (escapes are kept: keys with escapes are rare enough to go unlocated).
func (s *scanner) str() (string, bool) {
	q := s.next()
	delim := string(q)
	if s.pos+1 < len(s.src) && s.src[s.pos] == q && s.src[s.pos+1] == q {
		s.next()
		s.next()
		delim = string([]byte{q, q, q})
	} else if s.peek() == q { // empty string
		s.next()
		return "", true
	}
	start := s.pos
	for !s.eof() {
		if q == '"' && s.peek() == '\\' {
			s.next()
			s.next()
			continue
		}
		if len(delim) == 1 && s.peek() == '\n' {
			return "", false
		}
		if s.src[s.pos] == q && len(s.src)-s.pos >= len(delim) && s.src[s.pos:s.pos+len(delim)] == delim {
			// Up to two quotes may end a multi-line string's body just
			// before its closing delimiter: """a""""" is `a""`.
			for n := 0; len(delim) == 3 && n < 2 && s.pos+3 < len(s.src) && s.src[s.pos+3] == q; n++ {
				s.next()
			}
			body := s.src[start:s.pos]
			for range delim {
				s.next()
			}
			return body, true
		}
		s.next()
	}
	return "", false
}

// unescape decodes the escapes of a basic string. Go's are a superset of
// TOML's but for \e (escape, TOML 1.1); a key that does not decode keeps its
// raw spelling.
func unescape(raw string) string {
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		if raw[i] == '\\' && i+1 < len(raw) {
			if raw[i+1] == 'e' {
				b.WriteString(`\x1b`)
			} else {
				b.WriteString(raw[i : i+2])
			}
			i++
			continue
		}
		b.WriteByte(raw[i])
	}
	u, err := strconv.Unquote(`"` + b.String() + `"`)
	if err != nil {
		return raw
	}
	return u
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// stripIndexes turns "roles.app.allow[1].from" into "roles.app.allow.from".
func stripIndexes(path string) string {
	out := make([]byte, 0, len(path))
	skipping := false
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case c == '[':
			skipping = true
		case c == ']':
			skipping = false
		case !skipping:
			out = append(out, c)
		}
	}
	return string(out)
}
