/* Recursive-descent JSON parser (RFC 8259). Nodes are never freed: the program reads one
 * small config and then execs, so an arena would only add code. */
#include "json.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

struct parser {
	const char *start, *s, *end;
	char *err;
	size_t errlen;
	int failed;
};

/* Records the first error with its line number (what a human needs to find it); returns NULL. */
static void *fail(struct parser *p, const char *what)
{
	if (!p->failed) {
		int line = 1;
		for (const char *c = p->start; c < p->s && c < p->end; c++)
			line += *c == '\n';
		snprintf(p->err, p->errlen, "line %d: %s", line, what);
		p->failed = 1;
	}
	return NULL;
}

static struct jv *node(struct parser *p, enum jtype t)
{
	struct jv *v = calloc(1, sizeof *v);
	if (!v)
		return fail(p, "out of memory");
	v->type = t;
	return v;
}

/* The next significant character, or -1 at the end. */
static int peek(struct parser *p)
{
	while (p->s < p->end && strchr(" \t\n\r", *p->s))
		p->s++;
	return p->s < p->end ? (unsigned char)*p->s : -1;
}

static int eat(struct parser *p, int c)
{
	return peek(p) == c ? (p->s++, 1) : 0;
}

/* Four hex digits; 0x110000 (no code point) when they are not. */
static unsigned hex4(struct parser *p)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = *p->s++;
		int d = c >= '0' && c <= '9' ? c - '0' : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10 : -1;
		if (d < 0)
			return 0x110000;
		v = v << 4 | (unsigned)d;
	}
	return v;
}

static char *put_utf8(char *o, unsigned cp)
{
	static const unsigned char lead[] = { 0, 0xc0, 0xe0, 0xf0 };
	int n = cp < 0x80 ? 0 : cp < 0x800 ? 1 : cp < 0x10000 ? 2 : 3;
	*o++ = (char)(lead[n] | cp >> (6 * n));
	while (n--)
		*o++ = (char)(0x80 | (cp >> (6 * n) & 0x3f));
	return o;
}

/* At the opening quote. Decoded text is never longer than its escaped form, so one
 * allocation of the raw length is enough. */
static char *string(struct parser *p)
{
	static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";
	const char *q = ++p->s;
	while (q < p->end && *q != '"')
		q += *q == '\\' ? 2 : 1;
	if (q >= p->end)
		return fail(p, "unterminated string");
	char *out = malloc((size_t)(q - p->s) + 1), *o = out;
	if (!out)
		return fail(p, "out of memory");
	while (*p->s != '"') {
		unsigned char c = (unsigned char)*p->s++;
		const char *e;
		if (c < 0x20)
			return fail(p, "control character in string");
		if (c != '\\') {
			*o++ = (char)c;
		} else if (*p->s && (e = strchr(esc_in, *p->s))) {
			*o++ = esc_out[e - esc_in];
			p->s++;
		} else if (*p->s++ == 'u') {
			unsigned cp = hex4(p), lo;
			if (cp >= 0xd800 && cp < 0xdc00 && p->s[0] == '\\' && p->s[1] == 'u') {
				p->s += 2; /* a surrogate pair: one code point */
				if ((lo = hex4(p)) < 0xdc00 || lo > 0xdfff)
					return fail(p, "bad \\u escape");
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
				return fail(p, "bad \\u escape");
			if (cp == 0) /* C strings cannot hold it; a path or argument with NUL is bogus anyway */
				return fail(p, "NUL character in string");
			o = put_utf8(o, cp);
		} else {
			return fail(p, "bad escape in string");
		}
	}
	p->s++;
	*o = 0;
	return out;
}

static const char *digits(const char *s, const char *end)
{
	while (s < end && *s >= '0' && *s <= '9')
		s++;
	return s;
}

/* Checks the grammar first: strtod alone would accept "0x10", "inf" or "01". */
static struct jv *number(struct parser *p)
{
	const char *q = p->s + (*p->s == '-'), *d = digits(q, p->end);
	char buf[64];
	if (d == q || (d - q > 1 && *q == '0'))
		return fail(p, "bad number");
	if (d < p->end && *d == '.' && (q = digits(d + 1, p->end)) == d + 1)
		return fail(p, "bad number");
	d = d < p->end && *d == '.' ? q : d;
	if (d < p->end && (*d | 32) == 'e') {
		q = d + 1 + (d + 1 < p->end && (d[1] == '+' || d[1] == '-'));
		if ((d = digits(q, p->end)) == q)
			return fail(p, "bad number");
	}
	if (d - p->s >= (long)sizeof buf)
		return fail(p, "number too long");
	snprintf(buf, sizeof buf, "%.*s", (int)(d - p->s), p->s);
	p->s = d;
	struct jv *v = node(p, J_NUM);
	if (v)
		v->num = strtod(buf, NULL);
	return v;
}

static struct jv *value(struct parser *p, int depth);

/* Arrays and objects share one loop: members differ only by their "key": prefix. */
static struct jv *container(struct parser *p, int depth, int close)
{
	struct jv *v = node(p, close == '}' ? J_OBJ : J_ARR), **tail = v ? &v->child : NULL;
	if (!v || depth > MAX_DEPTH)
		return v ? fail(p, "nested too deeply") : NULL;
	p->s++;
	if (eat(p, close))
		return v;
	do {
		char *key = NULL;
		if (close == '}') {
			if (peek(p) != '"')
				return fail(p, "expected a member name");
			if (!(key = string(p)))
				return NULL;
			if (!eat(p, ':'))
				return fail(p, "expected ':'");
		}
		struct jv *item = value(p, depth + 1);
		if (!item)
			return NULL;
		item->key = key;
		*tail = item;
		tail = &item->next;
	} while (eat(p, ','));
	return eat(p, close) ? v : fail(p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
}

static struct jv *value(struct parser *p, int depth)
{
	static const char *words[] = { "null", "false", "true" };
	struct jv *v;
	int c = peek(p);
	if (c == '{' || c == '[')
		return container(p, depth, c == '{' ? '}' : ']');
	if (c == '"')
		return (v = node(p, J_STR)) && (v->str = string(p)) ? v : NULL;
	if (c == '-' || (c >= '0' && c <= '9'))
		return number(p);
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(words[i]);
		if ((size_t)(p->end - p->s) >= n && memcmp(p->s, words[i], n) == 0) {
			p->s += n;
			if ((v = node(p, i ? J_BOOL : J_NULL)))
				v->boolean = i == 2;
			return v;
		}
	}
	return fail(p, c < 0 ? "unexpected end of input" : "unexpected character");
}

struct jv *json_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct parser p = { text, text, text + len, err, errlen, 0 };
	struct jv *v = value(&p, 0);
	if (v && peek(&p) >= 0)
		return fail(&p, "trailing characters after the value");
	return p.failed ? NULL : v;
}

struct jv *json_get(const struct jv *obj, const char *key)
{
	struct jv *found = NULL;
	for (struct jv *m = obj && obj->type == J_OBJ ? obj->child : NULL; m; m = m->next)
		if (strcmp(m->key, key) == 0)
			found = m; /* the last duplicate wins, as in most JSON readers */
	return found;
}

size_t json_count(const struct jv *v)
{
	size_t n = 0;
	for (const struct jv *c = v ? v->child : NULL; c; c = c->next)
		n++;
	return n;
}
