/* A tiny JSON reader: enough for an OCI runtime config, nothing more. */
#ifndef IMGX_JSON_H
#define IMGX_JSON_H
#include <stddef.h>

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

/* One value. Arrays and objects keep their elements as a linked list (child → next),
 * which is all a config reader needs: we only ever walk them in order or look a key up. */
struct jv {
	enum jtype type;
	int boolean;
	double num;
	char *str;        /* J_STR: decoded UTF-8, NUL-terminated (embedded NULs are rejected) */
	char *key;        /* set on members of an object */
	struct jv *child; /* first element or member */
	struct jv *next;  /* next sibling */
};

/* Parses the whole text; on error returns NULL and a message ("line 3: expected ','"). */
struct jv *json_parse(const char *text, size_t len, char *err, size_t errlen);
/* Member `key` of an object, or NULL (also when `obj` is NULL or not an object). */
struct jv *json_get(const struct jv *obj, const char *key);
size_t json_count(const struct jv *v);

#endif
