/* The compiled half of primitives: three loops that run for every transaction.
 *
 * merkle_root (primitives.merkle): the binary Merkle root of a list of byte strings, the
 * same tree as primitives/merkle.py's reference_root: leaf = sha256(0x00 || item), node =
 * sha256(0x01 || left || right), an odd node at the end of a level carried up, the empty
 * list's root sha256(""). A block's two roots hash some 4 nodes a transaction, and in
 * Python each hash costs several times the hashing in call overhead.
 *
 * is_canonical (primitives.encoding.decode_canonical): whether MessagePack bytes are the
 * canonical encoding of a canonical value (PROTOCOL §1), read straight off the bytes
 * instead of re-encoding the decoded value in Python. It answers for the shape only:
 * the caller has decoded the bytes first (which checks that every string is UTF-8), and
 * on False takes the slow path that names what is wrong.
 *
 * is_hex (primitives.crypto): whether a value is a str of exactly so many bytes in
 * lowercase hex. Every key, signature and account field of every transaction is checked
 * with it, on admission and again on gossip. As a regular expression it had 2.4% of a
 * loaded validator's Python samples; compiled, a call costs a quarter of that.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

static PyObject *hex_of(const uint8_t digest[32]) {
    static const char digits[] = "0123456789abcdef";
    char text[64];
    for (int i = 0; i < 32; i++) {
        text[2 * i] = digits[digest[i] >> 4];
        text[2 * i + 1] = digits[digest[i] & 15];
    }
    return PyUnicode_FromStringAndSize(text, 64);
}

static PyObject *merkle_root(PyObject *module, PyObject *leaves) {
    if (!PyList_Check(leaves)) {
        PyErr_SetString(PyExc_TypeError, "merkle_root takes a list of bytes");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(leaves);
    uint8_t digest[32];
    if (count == 0) {
        SHA256((const uint8_t *)"", 0, digest);
        return hex_of(digest);
    }
    uint8_t(*level)[32] = PyMem_Malloc((size_t)count * 32);
    if (level == NULL)
        return PyErr_NoMemory();
    static const uint8_t leaf_tag = 0x00, node_tag = 0x01;
    SHA256_CTX context;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(leaves, i);
        if (!PyBytes_Check(item)) {
            PyMem_Free(level);
            PyErr_SetString(PyExc_TypeError, "merkle_root takes a list of bytes");
            return NULL;
        }
        SHA256_Init(&context);
        SHA256_Update(&context, &leaf_tag, 1);
        SHA256_Update(&context, PyBytes_AS_STRING(item), (size_t)PyBytes_GET_SIZE(item));
        SHA256_Final(level[i], &context);
    }
    while (count > 1) {
        Py_ssize_t next = 0;
        for (Py_ssize_t i = 0; i + 1 < count; i += 2) {
            SHA256_Init(&context);
            SHA256_Update(&context, &node_tag, 1);
            SHA256_Update(&context, level[i], 64); /* left and right are adjacent */
            SHA256_Final(level[next++], &context);
        }
        if (count % 2)
            memcpy(level[next++], level[count - 1], 32);
        count = next;
    }
    PyObject *root = hex_of(level[0]);
    PyMem_Free(level);
    return root;
}

/* ---- canonical MessagePack ------------------------------------------------------ */

#define MAX_DEPTH 32 /* primitives.encoding.MAX_DEPTH */
#define MAX_INT 0x7fffffffffffffffULL

typedef struct {
    const uint8_t *at, *end;
} Reader;

static int take(Reader *r, size_t n, const uint8_t **out) {
    if ((size_t)(r->end - r->at) < n)
        return 0;
    *out = r->at;
    r->at += n;
    return 1;
}

static int read_uint(Reader *r, int bytes, uint64_t *out) {
    const uint8_t *p;
    if (!take(r, (size_t)bytes, &p))
        return 0;
    uint64_t value = 0;
    for (int i = 0; i < bytes; i++)
        value = value << 8 | p[i];
    *out = value;
    return 1;
}

/* A string in its shortest form; its bytes in *text, *length. */
static int read_str(Reader *r, const uint8_t **text, uint64_t *length) {
    const uint8_t *p;
    if (!take(r, 1, &p))
        return 0;
    uint8_t tag = *p;
    if ((tag & 0xe0) == 0xa0)
        *length = tag & 0x1f;
    else if (tag == 0xd9) {
        if (!read_uint(r, 1, length) || *length < 32)
            return 0;
    } else if (tag == 0xda) {
        if (!read_uint(r, 2, length) || *length < 256)
            return 0;
    } else if (tag == 0xdb) {
        if (!read_uint(r, 4, length) || *length < 65536)
            return 0;
    } else
        return 0;
    return take(r, (size_t)*length, text);
}

/* A container header in its shortest form: fix (up to 15 entries), 16-bit, 32-bit. */
static int read_count(Reader *r, uint8_t tag, uint8_t fix_tag, uint8_t tag16, uint64_t *count) {
    if ((tag & 0xf0) == fix_tag) {
        *count = tag & 0x0f;
        return 1;
    }
    if (tag == tag16)
        return read_uint(r, 2, count) && *count >= 16;
    if (tag == tag16 + 1)
        return read_uint(r, 4, count) && *count >= 65536;
    return 0;
}

static int canonical_value(Reader *r, int depth) {
    if (depth > MAX_DEPTH || r->at >= r->end)
        return 0;
    uint8_t tag = *r->at;
    uint64_t value, count;
    if (tag <= 0x7f || tag == 0xc2 || tag == 0xc3) { /* positive fixint, false, true */
        r->at++;
        return 1;
    }
    if (tag >= 0xcc && tag <= 0xcf) { /* uint 8/16/32/64, each above the shorter forms */
        static const int bytes[] = {1, 2, 4, 8};
        static const uint64_t least[] = {0x80, 0x100, 0x10000, 0x100000000ULL};
        int kind = tag - 0xcc;
        r->at++;
        return read_uint(r, bytes[kind], &value) && value >= least[kind] && value <= MAX_INT;
    }
    if ((tag & 0xe0) == 0xa0 || (tag >= 0xd9 && tag <= 0xdb)) {
        const uint8_t *text;
        return read_str(r, &text, &value);
    }
    r->at++;
    if ((tag & 0xf0) == 0x90 || tag == 0xdc || tag == 0xdd) {
        if (!read_count(r, tag, 0x90, 0xdc, &count))
            return 0;
        for (uint64_t i = 0; i < count; i++)
            if (!canonical_value(r, depth + 1))
                return 0;
        return 1;
    }
    if ((tag & 0xf0) == 0x80 || tag == 0xde || tag == 0xdf) {
        if (!read_count(r, tag, 0x80, 0xde, &count))
            return 0;
        const uint8_t *previous = NULL;
        uint64_t previous_length = 0;
        for (uint64_t i = 0; i < count; i++) {
            const uint8_t *key;
            uint64_t length;
            if (!read_str(r, &key, &length))
                return 0;
            if (previous != NULL) { /* keys strictly increasing by their bytes */
                uint64_t common = length < previous_length ? length : previous_length;
                int order = memcmp(previous, key, (size_t)common);
                if (order > 0 || (order == 0 && previous_length >= length))
                    return 0;
            }
            previous = key;
            previous_length = length;
            if (!canonical_value(r, depth + 1))
                return 0;
        }
        return 1;
    }
    return 0; /* nil, bin, ext, floats, negative and signed integers */
}

static PyObject *is_canonical(PyObject *module, PyObject *data) {
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Reader reader = {view.buf, (const uint8_t *)view.buf + view.len};
    int ok = canonical_value(&reader, 0) && reader.at == reader.end;
    PyBuffer_Release(&view);
    return PyBool_FromLong(ok);
}

static PyObject *is_hex(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "is_hex takes a value and a length in bytes");
        return NULL;
    }
    Py_ssize_t length_bytes = PyLong_AsSsize_t(args[1]);
    if (length_bytes == -1 && PyErr_Occurred())
        return NULL;
    PyObject *value = args[0];
    /* A str that is not ASCII holds a character that is no hex digit. */
    if (length_bytes < 0 || length_bytes > PY_SSIZE_T_MAX / 2
        || !PyUnicode_Check(value) || !PyUnicode_IS_ASCII(value)
        || PyUnicode_GET_LENGTH(value) != 2 * length_bytes)
        Py_RETURN_FALSE;
    const Py_UCS1 *text = PyUnicode_1BYTE_DATA(value);
    for (Py_ssize_t i = 0; i < 2 * length_bytes; i++) {
        Py_UCS1 c = text[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"merkle_root", merkle_root, METH_O,
     "merkle_root(leaves: list[bytes]) -> str: the root, as hex."},
    {"is_canonical", is_canonical, METH_O,
     "is_canonical(data: bytes) -> bool: canonical MessagePack of a canonical value (shape "
     "only: decode first, which checks the strings' UTF-8)."},
    {"is_hex", (PyCFunction)(void (*)(void))is_hex, METH_FASTCALL,
     "is_hex(value: object, length_bytes: int) -> bool: a str of exactly length_bytes "
     "bytes written as lowercase hex."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "primitives._native", NULL, -1, methods,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
