package luks

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The LUKS2 metadata is JSON (RFC 8259). It is parsed here rather than with
// encoding/json because a header is hostile input and the parse must:
//   - refuse duplicate object keys (encoding/json and json-c both keep the
//     last one silently; two readers seeing different values is how parser
//     differentials are exploited),
//   - bound nesting depth (json-c's default, 32, is what cryptsetup accepts)
//     and the number of values, so memory stays proportional to a small
//     constant times the 4 MiB area,
//   - keep object members in order and number literals as written, so a
//     header we rewrite keeps everything we did not change (tokens above all)
//     the way cryptsetup wrote it.
const (
	jsonMaxDepth  = 32
	jsonMaxValues = 1 << 16
)

type jsonKind uint8

const (
	jsonNull jsonKind = iota
	jsonBool
	jsonNumber
	jsonString
	jsonArray
	jsonObject
)

func (k jsonKind) String() string {
	return [...]string{"null", "boolean", "number", "string", "array", "object"}[k]
}

// jsonValue is one parsed JSON value. Numbers keep their literal text in str.
type jsonValue struct {
	kind jsonKind
	str  string
	b    bool
	arr  []*jsonValue
	obj  []jsonMember
}

type jsonMember struct {
	key string
	val *jsonValue
}

// errJSON is wrapped by every syntax error.
var errJSON = errors.New("invalid JSON")

type jsonParser struct {
	b      []byte
	pos    int
	values int
}

// parseJSON parses the one JSON value at the start of b and returns it with
// the offset just past it. Nothing may precede the value; what follows it is
// the caller's business.
func parseJSON(b []byte) (*jsonValue, int, error) {
	p := &jsonParser{b: b}
	v, err := p.value(0)
	if err != nil {
		return nil, 0, err
	}
	return v, p.pos, nil
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at byte %d: %s", errJSON, p.pos, fmt.Sprintf(format, args...))
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.b) {
		switch p.b[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (*jsonValue, error) {
	if depth > jsonMaxDepth {
		return nil, p.errorf("nested deeper than %d", jsonMaxDepth)
	}
	if p.values++; p.values > jsonMaxValues {
		return nil, p.errorf("more than %d values", jsonMaxValues)
	}
	if p.pos >= len(p.b) {
		return nil, p.errorf("unexpected end")
	}
	switch c := p.b[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		return &jsonValue{kind: jsonString, str: s}, nil
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case p.literal("true"):
		return &jsonValue{kind: jsonBool, b: true}, nil
	case p.literal("false"):
		return &jsonValue{kind: jsonBool}, nil
	case p.literal("null"):
		return &jsonValue{kind: jsonNull}, nil
	default:
		return nil, p.errorf("unexpected character %q", c)
	}
}

func (p *jsonParser) literal(word string) bool {
	if strings.HasPrefix(string(p.b[p.pos:min(len(p.b), p.pos+len(word))]), word) {
		p.pos += len(word)
		return true
	}
	return false
}

func (p *jsonParser) object(depth int) (*jsonValue, error) {
	v := &jsonValue{kind: jsonObject}
	p.pos++ // '{'
	p.skipSpace()
	if p.pos < len(p.b) && p.b[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	seen := map[string]bool{}
	for {
		p.skipSpace()
		if p.pos >= len(p.b) || p.b[p.pos] != '"' {
			return nil, p.errorf("expected an object key")
		}
		key, err := p.string()
		if err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, p.errorf("duplicate key %q", key)
		}
		seen[key] = true
		p.skipSpace()
		if p.pos >= len(p.b) || p.b[p.pos] != ':' {
			return nil, p.errorf("expected ':' after key %q", key)
		}
		p.pos++
		p.skipSpace()
		val, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.obj = append(v.obj, jsonMember{key, val})
		p.skipSpace()
		if p.pos >= len(p.b) {
			return nil, p.errorf("unterminated object")
		}
		switch p.b[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return v, nil
		default:
			return nil, p.errorf("expected ',' or '}' in object")
		}
	}
}

func (p *jsonParser) array(depth int) (*jsonValue, error) {
	v := &jsonValue{kind: jsonArray}
	p.pos++ // '['
	p.skipSpace()
	if p.pos < len(p.b) && p.b[p.pos] == ']' {
		p.pos++
		return v, nil
	}
	for {
		p.skipSpace()
		val, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.arr = append(v.arr, val)
		p.skipSpace()
		if p.pos >= len(p.b) {
			return nil, p.errorf("unterminated array")
		}
		switch p.b[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return v, nil
		default:
			return nil, p.errorf("expected ',' or ']' in array")
		}
	}
}

func (p *jsonParser) number() (*jsonValue, error) {
	start := p.pos
	digits := func() int {
		n := 0
		for p.pos < len(p.b) && p.b[p.pos] >= '0' && p.b[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	if p.b[p.pos] == '-' {
		p.pos++
	}
	if p.pos < len(p.b) && p.b[p.pos] == '0' {
		p.pos++
	} else if digits() == 0 {
		return nil, p.errorf("malformed number")
	}
	if p.pos < len(p.b) && p.b[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return nil, p.errorf("malformed number")
		}
	}
	if p.pos < len(p.b) && (p.b[p.pos] == 'e' || p.b[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.b) && (p.b[p.pos] == '+' || p.b[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, p.errorf("malformed number")
		}
	}
	return &jsonValue{kind: jsonNumber, str: string(p.b[start:p.pos])}, nil
}

// string parses a JSON string. It refuses control characters, invalid UTF-8,
// lone surrogates and U+0000 (which C readers, cryptsetup among them, would
// take as the end of the string).
func (p *jsonParser) string() (string, error) {
	p.pos++ // '"'
	var sb strings.Builder
	for {
		if p.pos >= len(p.b) {
			return "", p.errorf("unterminated string")
		}
		c := p.b[p.pos]
		switch {
		case c == '"':
			p.pos++
			return sb.String(), nil
		case c < 0x20:
			return "", p.errorf("control character in string")
		case c == '\\':
			if p.pos+1 >= len(p.b) {
				return "", p.errorf("unterminated escape")
			}
			e := p.b[p.pos+1]
			p.pos += 2
			switch e {
			case '"', '\\', '/':
				sb.WriteByte(e)
			case 'b':
				sb.WriteByte('\b')
			case 'f':
				sb.WriteByte('\f')
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case 'u':
				r, err := p.hex4()
				if err != nil {
					return "", err
				}
				if utf16.IsSurrogate(r) {
					if !strings.HasPrefix(string(p.b[p.pos:min(len(p.b), p.pos+2)]), `\u`) {
						return "", p.errorf("lone surrogate")
					}
					p.pos += 2
					r2, err := p.hex4()
					if err != nil {
						return "", err
					}
					if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
						return "", p.errorf("invalid surrogate pair")
					}
				}
				if r == 0 {
					return "", p.errorf("NUL in string")
				}
				sb.WriteRune(r)
			default:
				return "", p.errorf("invalid escape \\%c", e)
			}
		case c < utf8.RuneSelf:
			sb.WriteByte(c)
			p.pos++
		default:
			r, n := utf8.DecodeRune(p.b[p.pos:])
			if r == utf8.RuneError && n <= 1 {
				return "", p.errorf("invalid UTF-8")
			}
			sb.Write(p.b[p.pos : p.pos+n])
			p.pos += n
		}
	}
}

func (p *jsonParser) hex4() (rune, error) {
	if p.pos+4 > len(p.b) {
		return 0, p.errorf("short \\u escape")
	}
	n, err := strconv.ParseUint(string(p.b[p.pos:p.pos+4]), 16, 16)
	if err != nil {
		return 0, p.errorf("malformed \\u escape")
	}
	p.pos += 4
	return rune(n), nil
}

// encode appends the compact encoding of v to b, the way cryptsetup writes its
// metadata (json-c, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE):
// no whitespace, only '"', '\\' and control characters escaped.
func (v *jsonValue) encode(b []byte) []byte {
	switch v.kind {
	case jsonNull:
		return append(b, "null"...)
	case jsonBool:
		return strconv.AppendBool(b, v.b)
	case jsonNumber:
		return append(b, v.str...)
	case jsonString:
		return appendJSONString(b, v.str)
	case jsonArray:
		b = append(b, '[')
		for i, e := range v.arr {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.encode(b)
		}
		return append(b, ']')
	default:
		b = append(b, '{')
		for i, m := range v.obj {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, m.key)
			b = append(b, ':')
			b = m.val.encode(b)
		}
		return append(b, '}')
	}
}

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, `\b`...)
		case c == '\f':
			b = append(b, `\f`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c == '\t':
			b = append(b, `\t`...)
		case c < 0x20:
			b = append(b, fmt.Sprintf(`\u%04x`, c)...)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// get returns the member key of object v, or nil.
func (v *jsonValue) get(key string) *jsonValue {
	if v == nil || v.kind != jsonObject {
		return nil
	}
	for _, m := range v.obj {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

// set replaces the member key of object v, or appends it.
func (v *jsonValue) set(key string, val *jsonValue) {
	for i := range v.obj {
		if v.obj[i].key == key {
			v.obj[i].val = val
			return
		}
	}
	v.obj = append(v.obj, jsonMember{key, val})
}

// del removes the member key of object v.
func (v *jsonValue) del(key string) {
	for i := range v.obj {
		if v.obj[i].key == key {
			v.obj = append(v.obj[:i:i], v.obj[i+1:]...)
			return
		}
	}
}

// clone returns a deep copy of v.
func (v *jsonValue) clone() *jsonValue {
	c := *v
	if v.arr != nil {
		c.arr = make([]*jsonValue, len(v.arr))
		for i, e := range v.arr {
			c.arr[i] = e.clone()
		}
	}
	if v.obj != nil {
		c.obj = make([]jsonMember, len(v.obj))
		for i, m := range v.obj {
			c.obj[i] = jsonMember{m.key, m.val.clone()}
		}
	}
	return &c
}

// Constructors for the values this package writes.
func jStr(s string) *jsonValue { return &jsonValue{kind: jsonString, str: s} }
func jInt(n int64) *jsonValue {
	return &jsonValue{kind: jsonNumber, str: strconv.FormatInt(n, 10)}
}
func jUint(n uint64) *jsonValue { return jStr(strconv.FormatUint(n, 10)) } // LUKS2 writes 64-bit numbers as strings
func jObj(members ...jsonMember) *jsonValue {
	return &jsonValue{kind: jsonObject, obj: members}
}
func jArr(elems ...*jsonValue) *jsonValue {
	return &jsonValue{kind: jsonArray, arr: append([]*jsonValue{}, elems...)}
}
func jm(key string, val *jsonValue) jsonMember { return jsonMember{key, val} }
