/*
 * json_simd.cpp - the JSON verdict, by simdjson (see json_simd.h).
 *
 * The one C++ file of the core.  Fast path: simdjson's DOM parser, whose
 * SIMD kernels are picked at run time for this CPU, parses the line; a
 * valid line then costs one pass over its top-level members for @field.
 *
 * Slow path, for lines the parser refused: it says what, never where.
 * The column comes from simdjson's On Demand API walking every value
 * (which tells where it stopped), a pass that pairs brackets and quotes
 * (depth, unclosed, mismatched, trailing) and, for invalid UTF-8,
 * simdjson's UTF-8 check applied one character at a time.  The walk also
 * settles the one thing the parser refuses that RFC 8259 allows: numbers
 * it cannot represent (1e999, integers past 64 bits).  Such a number that
 * matches the RFC's grammar is replaced by a "0" and blanks of the same
 * length, and the parser judges the line again, so the parser alone
 * decides everything else.
 *
 * Memory: each thread keeps one parser with room for lines up to
 * KEEP_BYTES (about 14 bytes of buffers per byte of line); a longer line
 * gets a parser of its own, freed when it is judged, so that a thread
 * that once saw a 64 MiB event does not hold a gigabyte.
 */
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <regex.h>

#include <simdjson.h>

#include "json_simd.h"

using namespace simdjson;

namespace {

constexpr size_t KEEP_BYTES = 64 * 1024;

/* simdjson counts the document itself as a level: +1 for JSIMD_MAX_DEPTH containers */
constexpr size_t PARSER_DEPTH = JSIMD_MAX_DEPTH + 1;

thread_local dom::parser tls_parser;

enum jsimd_code map_error(error_code e)
{
	switch (e) {
	case SUCCESS:
		return JSIMD_OK;
	case UTF8_ERROR:
		return JSIMD_UTF8;
	case UNESCAPED_CHARS:
		return JSIMD_CONTROL;
	case UNCLOSED_STRING:
	case INCOMPLETE_ARRAY_OR_OBJECT:
		return JSIMD_END;
	case STRING_ERROR:
		return JSIMD_STRING;
	case NUMBER_ERROR:
	case NUMBER_OUT_OF_RANGE:
		return JSIMD_NUMBER;
	case T_ATOM_ERROR:
	case F_ATOM_ERROR:
	case N_ATOM_ERROR:
		return JSIMD_LITERAL;
	case DEPTH_ERROR:
		return JSIMD_DEPTH;
	case TRAILING_CONTENT:
		return JSIMD_TRAILING;
	case MEMALLOC:
	case CAPACITY:
		return JSIMD_NOMEM;
	default:
		return JSIMD_STRUCTURE;
	}
}

/* RFC 8259 section 6, for the numbers simdjson cannot represent. */
bool rfc_number(std::string_view tok)
{
	static regex_t re;
	static const bool ok = regcomp(&re, "^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][-+]?[0-9]+)?$",
				       REG_EXTENDED | REG_NOSUB) == 0;
	std::string s(tok);

	return ok && regexec(&re, s.c_str(), 0, nullptr, 0) == 0;
}

bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Offset of the first byte that does not start a valid UTF-8 character. */
size_t utf8_at(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n = c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;

		if (n > len - i || !validate_utf8(s + i, n))
			return i;
		i += n;
	}
	return len;
}

/*
 * Pair brackets and quotes: the first raw control byte in a string, level
 * past JSIMD_MAX_DEPTH, mismatched or extra closer, byte after the object,
 * or end inside a string or container.  JSIMD_OK if none.
 */
enum jsimd_code scan(const char *s, size_t len, size_t *off)
{
	std::vector<char> stack;
	bool in_str = false, done = false;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		*off = i;
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
			else if ((unsigned char)c < 0x20)
				return JSIMD_CONTROL;
			continue;
		}
		if (is_ws(c))
			continue;
		if (done)
			return JSIMD_TRAILING;
		if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			if (stack.size() == JSIMD_MAX_DEPTH)
				return JSIMD_DEPTH;
			stack.push_back(c == '{' ? '}' : ']');
		} else if (c == '}' || c == ']') {
			if (stack.empty() || stack.back() != c)
				return JSIMD_STRUCTURE;
			stack.pop_back();
			done = stack.empty();
		}
	}
	*off = len;
	return in_str || !stack.empty() ? JSIMD_END : JSIMD_OK;
}

/* The On Demand walk over every value: where the first error is. */
struct walker {
	const char *base;
	size_t len;
	ondemand::document *doc;
	std::vector<std::pair<size_t, size_t>> big;	/* numbers past simdjson's range */
	error_code err = SUCCESS;
	size_t off = 0;

	error_code fail(error_code e, size_t at)
	{
		err = e;
		off = at;
		return e;
	}

	error_code fail_here(error_code e)
	{
		const char *p;

		if (doc->current_location().get(p))
			return fail(e, len);
		return fail(e, p - base);
	}

	size_t at(ondemand::value &v)
	{
		return v.raw_json_token().data() - base;
	}

	error_code value(ondemand::value v, unsigned depth);
	error_code object(ondemand::object o, unsigned depth);
};

error_code walker::object(ondemand::object o, unsigned depth)
{
	for (auto res : o) {
		ondemand::field f;
		std::string_view k;
		error_code e;

		if ((e = std::move(res).get(f)))
			return fail_here(e);
		size_t kpos = f.key().raw() - 1 - base;	/* unescaped_key() consumes it */

		if ((e = f.unescaped_key().get(k)))
			return fail(e, kpos);
		if ((e = value(f.value(), depth)))
			return e;
	}
	return SUCCESS;
}

error_code walker::value(ondemand::value v, unsigned depth)
{
	size_t pos = at(v);
	ondemand::json_type t;
	error_code e;

	if ((e = v.type().get(t)))
		return fail(e, pos);
	switch (t) {
	case ondemand::json_type::object: {
		ondemand::object o;

		if (depth == JSIMD_MAX_DEPTH)
			return fail(DEPTH_ERROR, pos);
		if ((e = v.get_object().get(o)))
			return fail(e, pos);
		return object(o, depth + 1);
	}
	case ondemand::json_type::array: {
		ondemand::array a;

		if (depth == JSIMD_MAX_DEPTH)
			return fail(DEPTH_ERROR, pos);
		if ((e = v.get_array().get(a)))
			return fail(e, pos);
		for (auto res : a) {
			ondemand::value x;

			if ((e = std::move(res).get(x)))
				return fail_here(e);
			if ((e = value(x, depth + 1)))
				return e;
		}
		return SUCCESS;
	}
	case ondemand::json_type::string: {
		std::string_view s;

		if ((e = v.get_string().get(s)))
			return fail(e, pos);
		return SUCCESS;
	}
	case ondemand::json_type::number: {
		std::string_view tok = v.raw_json_token();
		ondemand::number n;

		if (!v.get_number().get(n))
			return SUCCESS;
		while (!tok.empty() && is_ws(tok.back()))
			tok.remove_suffix(1);
		if (!rfc_number(tok))
			return fail(NUMBER_ERROR, pos);
		big.emplace_back(pos, tok.size());
		return SUCCESS;
	}
	case ondemand::json_type::boolean: {
		bool b;

		if ((e = v.get_bool().get(b)))
			return fail(e, pos);
		return SUCCESS;
	}
	case ondemand::json_type::null: {
		bool b = false;

		if ((e = v.is_null().get(b)) || !b)
			return fail(e ? e : N_ATOM_ERROR, pos);
		return SUCCESS;
	}
	}
	return fail(TAPE_ERROR, pos);
}

/* Walk @s: 0 and w->big filled, or the first error in w->err and w->off. */
void walk(const char *s, size_t len, walker *w)
{
	ondemand::parser p;
	padded_string copy(s, len);
	ondemand::document doc;
	ondemand::object o;
	const char *end;
	error_code e;

	w->base = copy.data();
	w->len = len;
	w->doc = &doc;
	if ((e = p.iterate(copy).get(doc))) {
		w->fail(e, len);
		return;
	}
	if ((e = doc.get_object().get(o))) {
		w->fail_here(e);
		return;
	}
	if (w->object(o, 1))
		return;
	if (!doc.current_location().get(end))
		w->fail(TRAILING_CONTENT, end - copy.data());
}

/* The top-level members named @field of a parsed object. */
enum jsimd_code members(dom::element root, const char *field, size_t flen, char *out, size_t cap,
			struct jsimd_result *r)
{
	dom::object obj;

	if (root.get_object().get(obj))
		return JSIMD_NOT_OBJECT;
	for (dom::key_value_pair kv : obj) {
		std::string_view v;

		if (kv.key.size() != flen || memcmp(kv.key.data(), field, flen))
			continue;
		if (r->nfield++ || kv.value.get_string().get(v))
			continue;
		r->field_is_string = true;
		r->field_len = v.size();
		memcpy(out, v.data(), v.size() < cap ? v.size() : cap);
	}
	return JSIMD_OK;
}

/*
 * simdjson's depth limit counts containers it enters: an empty [] or {}
 * one level below the limit passes.  Count them all on the tape (simdjson's
 * documented tape format, doc/tape.md: one 64-bit word per value, type in
 * the top byte, numbers take a second word).  A tape shorter than two words
 * per level cannot be that deep, so small events never pay for this.
 */
bool too_deep(const dom::document &doc)
{
	const uint64_t *tape = doc.tape.get();
	uint64_t end = tape[0] & internal::JSON_VALUE_MASK;
	unsigned depth = 0;

	if (end < 2 * (JSIMD_MAX_DEPTH + 1))
		return false;
	for (uint64_t i = 1; i < end; i++) {
		switch (tape[i] >> 56) {
		case '{':
		case '[':
			if (++depth > JSIMD_MAX_DEPTH)	/* the event itself is level 1 */
				return true;
			break;
		case '}':
		case ']':
			depth--;
			break;
		case 'l':
		case 'u':
		case 'd':
			i++;
			break;
		}
	}
	return false;
}

/*
 * A raw NUL is never valid outside a string (inside one simdjson refuses
 * it), but simdjson's number parser takes it for the end of the number
 * and skips what follows: {"n":1\0{"x"}... passes.  So an accepted line
 * with a NUL is refused here, at the NUL.
 */
void nul_at(const char *s, size_t len, struct jsimd_result *r)
{
	const char *nul = static_cast<const char *>(memchr(s, 0, len));

	if (nul) {
		r->code = JSIMD_STRUCTURE;
		r->off = nul - s;
	}
}

/* Judge @s with @p; on success fill @r's members. */
error_code judge(dom::parser &p, const char *s, size_t len, const char *field, size_t flen,
		 char *out, size_t cap, struct jsimd_result *r)
{
	dom::element root;
	error_code e = p.parse(s, len, true).get(root);

	if (!e && too_deep(p.doc))
		return DEPTH_ERROR;
	if (!e && (r->code = members(root, field, flen, out, cap, r)) == JSIMD_NOT_OBJECT) {
		r->off = 0;
		while (r->off < len && is_ws(s[r->off]))
			r->off++;
	}
	return e;
}

enum jsimd_code refused(const char *s, size_t len, error_code e, const char *field, size_t flen,
			char *out, size_t cap, struct jsimd_result *r)
{
	enum jsimd_code code = map_error(e), sc;
	size_t soff;
	walker w;

	r->code = code;
	r->off = 0;
	if (code == JSIMD_UTF8) {
		r->off = utf8_at(s, len);
		return code;
	}
	if (code == JSIMD_NOMEM)
		return code;
	sc = scan(s, len, &soff);
	if (code == JSIMD_CONTROL || code == JSIMD_DEPTH || code == JSIMD_END) {
		if (sc != JSIMD_OK) {
			r->code = sc;
			r->off = soff;
		}
		return r->code;
	}
	try {
		walk(s, len, &w);
	} catch (const std::bad_alloc &) {
		return r->code = JSIMD_NOMEM;
	}
	/*
	 * The walk cannot place what simdjson finds before walking (a bracket
	 * never closed, text after the object: it stops at offset 0); the
	 * scan can.  Otherwise the first of the two is the first problem.
	 */
	if (w.err && (map_error(w.err) == JSIMD_END || map_error(w.err) == JSIMD_TRAILING ||
		      w.off == 0) && sc != JSIMD_OK)
		w.err = SUCCESS;
	if (w.err && (sc == JSIMD_OK || w.off < soff)) {
		r->code = map_error(w.err);
		r->off = w.off;
		/* the walk stopped on a value it did not expect: what is there says more */
		if (r->code == JSIMD_STRUCTURE && w.off < len &&
		    ((s[w.off] >= 'a' && s[w.off] <= 'z') || (s[w.off] >= 'A' && s[w.off] <= 'Z')))
			r->code = JSIMD_LITERAL;
		return r->code;
	}
	if (sc != JSIMD_OK) {
		r->code = sc;
		r->off = soff;
		return r->code;
	}
	if (!w.big.empty()) {
		/* only numbers simdjson cannot hold: judge the rest with them made small */
		std::string t(s, len);
		dom::parser p;

		for (auto &b : w.big) {
			t[b.first] = '0';
			memset(&t[b.first + 1], ' ', b.second - 1);
		}
		r->nfield = 0;
		if (p.allocate(len, PARSER_DEPTH))
			return r->code = JSIMD_NOMEM;
		e = judge(p, t.data(), len, field, flen, out, cap, r);
		if (!e) {
			nul_at(s, len, r);
			return r->code;
		}
		r->code = map_error(e);
	}
	/* the parser refused what the walk and the scan found fine: no column */
	return r->code;
}

} /* namespace */

extern "C" enum jsimd_code jsimd_check(const char *line, size_t len, const char *field,
					size_t flen, char *out, size_t cap, struct jsimd_result *r)
{
	error_code e;

	*r = {};
	try {
		if (len <= KEEP_BYTES) {
			dom::parser &p = tls_parser;

			if (!p.capacity() && p.allocate(KEEP_BYTES, PARSER_DEPTH))
				return r->code = JSIMD_NOMEM;
			e = judge(p, line, len, field, flen, out, cap, r);
		} else {
			dom::parser p;

			if (p.allocate(len, PARSER_DEPTH))
				return r->code = JSIMD_NOMEM;
			e = judge(p, line, len, field, flen, out, cap, r);
		}
	} catch (const std::bad_alloc &) {
		return r->code = JSIMD_NOMEM;
	}
	if (!e) {
		nul_at(line, len, r);
		return r->code;
	}
	return refused(line, len, e, field, flen, out, cap, r);
}

extern "C" size_t jsimd_utf8_prefix(const char *s, size_t len)
{
	return validate_utf8(s, len) ? len : utf8_at(s, len);
}

extern "C" const char *jsimd_kernel(void)
{
	static const std::string name = get_active_implementation()->name();

	return name.c_str();
}
