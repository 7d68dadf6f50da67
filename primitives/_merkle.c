/* Compiled core of primitives.merkle: the binary Merkle root of a list of byte strings.
 *
 * Same tree as primitives/merkle.py's reference_root: leaf = sha256(0x00 || item),
 * node = sha256(0x01 || left || right), an odd node at the end of a level carried up,
 * the empty list's root sha256(""). A block's two roots hash some 4 nodes a transaction,
 * and in Python each hash costs several times the hashing in call overhead.
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

static PyMethodDef methods[] = {
    {"merkle_root", merkle_root, METH_O,
     "merkle_root(leaves: list[bytes]) -> str: the root, as hex."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "primitives._merkle", NULL, -1, methods,
};

PyMODINIT_FUNC PyInit__merkle(void) { return PyModule_Create(&module); }
