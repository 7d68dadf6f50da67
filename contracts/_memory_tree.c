/* The newest version of the state tree, in memory, changed in place (compiled core of
 * contracts.memory_tree).
 *
 * Same trie as contracts/state_tree.py (docs/STATE.md §3): a key's path is sha256(key),
 * a prefix with no key is empty, with one key that key's leaf, with more an internal
 * node; leaf = 0x00 || path || sha256(value), internal = 0x01 || bitmap (2 bytes, big
 * endian) || the present children's hashes. Nodes are structs addressed by pointer, not
 * by hash: a write walks its path and marks the nodes it passes, and at the end of a
 * batch each marked node is hashed once, deepest first. A leaf's hash is written into
 * its parent's slot at once; an internal node's only when the batch is hashed.
 *
 * The root position (the top node) is never collapsed: with one key below it, the root
 * is that key's leaf hash.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

#include "_trie.h"

#define LEAF_TAG 0x00
#define INTERNAL_TAG 0x01
#define DEPTH 64 /* nibbles in a path */

typedef struct Leaf {
    uint8_t path[32];
    uint8_t value_hash[32];
} Leaf;

typedef struct Node {
    void *child[16]; /* NULL: empty; low bit set: a Leaf *, else a Node * */
    uint8_t hash[16][32];
    uint16_t bitmap; /* bit i set: slot i not empty */
    uint8_t dirty;   /* marked in this batch, hash not yet recomputed */
    uint8_t dead;    /* collapsed away in this batch, freed once the batch is hashed */
} Node;

#define IS_LEAF(p) (((uintptr_t)(p)) & 1u)
#define AS_LEAF(p) ((Leaf *)(((uintptr_t)(p)) & ~(uintptr_t)1u))
#define TAG_LEAF(p) ((void *)(((uintptr_t)(p)) | 1u))

typedef struct Mark {
    Node *node;
    Node *parent; /* NULL for the top node */
    int slot;     /* the node's slot in its parent */
} Mark;

typedef struct Marks {
    Mark *items;
    size_t count, capacity;
} Marks;

typedef struct {
    PyObject_HEAD
    Node *top;
    Marks marks[DEPTH];
    int broken; /* an allocation failed mid-batch: the tree can no longer be trusted */
    int busy;   /* a batch is being applied (without the GIL) by another thread */
} TreeObject;

#define LEAF_BYTES 65

static void leaf_bytes(const Leaf *leaf, uint8_t buf[LEAF_BYTES]) {
    buf[0] = LEAF_TAG;
    memcpy(buf + 1, leaf->path, 32);
    memcpy(buf + 33, leaf->value_hash, 32);
}

static void leaf_hash(const Leaf *leaf, uint8_t out[32]) {
    uint8_t data[LEAF_BYTES];
    leaf_bytes(leaf, data);
    sha256(data, sizeof data, out);
}

/* The node's bytes into buf (at least 3 + 16 * 32); returns their length. */
static size_t node_bytes(const Node *node, uint8_t *buf) {
    size_t length = 3;
    buf[0] = INTERNAL_TAG;
    buf[1] = (uint8_t)(node->bitmap >> 8);
    buf[2] = (uint8_t)(node->bitmap & 0xFF);
    for (int i = 0; i < 16; i++) {
        if (node->bitmap & (1u << i)) {
            memcpy(buf + length, node->hash[i], 32);
            length += 32;
        }
    }
    return length;
}

static void node_hash(const Node *node, uint8_t out[32]) {
    uint8_t buf[3 + 16 * 32];
    sha256(buf, node_bytes(node, buf), out);
}

static int mark(TreeObject *self, Node *node, Node *parent, int slot, int depth) {
    if (node->dirty)
        return 0;
    Marks *marks = &self->marks[depth];
    if (marks->count == marks->capacity) {
        size_t capacity = marks->capacity ? marks->capacity * 2 : 64;
        Mark *items = PyMem_RawRealloc(marks->items, capacity * sizeof(Mark));
        if (items == NULL)
            return -1;
        marks->items = items;
        marks->capacity = capacity;
    }
    marks->items[marks->count++] = (Mark){node, parent, slot};
    node->dirty = 1;
    return 0;
}

static Node *new_node(void) { return PyMem_RawCalloc(1, sizeof(Node)); }

/* Set the key at `path` to the value whose hash is `value_hash`. */
static int tree_set(TreeObject *self, const uint8_t *path, const uint8_t *value_hash) {
    Node *node = self->top, *parent = NULL;
    int slot = 0;
    for (int depth = 0; depth < DEPTH; depth++) {
        if (mark(self, node, parent, slot, depth) < 0)
            return -1;
        int index = nibble(path, depth);
        void *child = node->child[index];
        if (child == NULL) {
            Leaf *leaf = PyMem_RawMalloc(sizeof(Leaf));
            if (leaf == NULL)
                return -1;
            memcpy(leaf->path, path, 32);
            memcpy(leaf->value_hash, value_hash, 32);
            node->child[index] = TAG_LEAF(leaf);
            node->bitmap |= (uint16_t)(1u << index);
            leaf_hash(leaf, node->hash[index]);
            return 0;
        }
        if (!IS_LEAF(child)) {
            parent = node;
            slot = index;
            node = child;
            continue;
        }
        Leaf *leaf = AS_LEAF(child);
        if (memcmp(leaf->path, path, 32) == 0) {
            memcpy(leaf->value_hash, value_hash, 32);
            leaf_hash(leaf, node->hash[index]);
            return 0;
        }
        /* Another key's leaf holds the slot: a node for the two of them takes its place,
           and the next round places ours in it (or splits again). */
        Node *split = new_node();
        if (split == NULL)
            return -1;
        int other = nibble(leaf->path, depth + 1);
        split->child[other] = child;
        memcpy(split->hash[other], node->hash[index], 32);
        split->bitmap = (uint16_t)(1u << other);
        node->child[index] = split;
        parent = node;
        slot = index;
        node = split;
    }
    return -2; /* two keys with the same path */
}

/* Delete the key at `path` if present; the nodes left with one leaf collapse into it. */
static int tree_delete(TreeObject *self, const uint8_t *path) {
    Node *nodes[DEPTH];
    int slots[DEPTH]; /* slots[d]: the slot of nodes[d + 1] in nodes[d] */
    Node *node = self->top;
    int depth = 0;
    for (;;) {
        nodes[depth] = node;
        int index = nibble(path, depth);
        slots[depth] = index;
        void *child = node->child[index];
        if (child == NULL)
            return 0;
        if (IS_LEAF(child)) {
            if (memcmp(AS_LEAF(child)->path, path, 32) != 0)
                return 0;
            PyMem_RawFree(AS_LEAF(child));
            break;
        }
        node = child;
        depth++;
    }
    for (int d = 0; d <= depth; d++) {
        if (mark(self, nodes[d], d ? nodes[d - 1] : NULL, d ? slots[d - 1] : 0, d) < 0)
            return -1;
    }
    node->child[slots[depth]] = NULL;
    node->bitmap &= (uint16_t)~(1u << slots[depth]);
    memset(node->hash[slots[depth]], 0, 32);
    for (int d = depth; d > 0; d--) {
        Node *lone = nodes[d];
        uint16_t bitmap = lone->bitmap;
        if (bitmap & (bitmap - 1))
            break; /* two or more children: stays */
        int index = __builtin_ctz(bitmap);
        if (!IS_LEAF(lone->child[index]))
            break; /* one child node, which holds two or more keys */
        Node *above = nodes[d - 1];
        above->child[slots[d - 1]] = lone->child[index];
        memcpy(above->hash[slots[d - 1]], lone->hash[index], 32);
        lone->dead = 1;
    }
    return 0;
}

/* Hash every marked node, deepest first, into its parent's slot; free the dead. */
static void rehash(TreeObject *self) {
    for (int depth = DEPTH - 1; depth >= 0; depth--) {
        Marks *marks = &self->marks[depth];
        for (size_t i = 0; i < marks->count; i++) {
            Mark *m = &marks->items[i];
            if (m->node->dead) {
                PyMem_RawFree(m->node);
                continue;
            }
            m->node->dirty = 0;
            if (m->parent != NULL)
                node_hash(m->node, m->parent->hash[m->slot]);
        }
        marks->count = 0;
    }
}

static PyObject *root_hex(TreeObject *self) {
    static const char digits[] = "0123456789abcdef";
    uint8_t root[32];
    uint16_t bitmap = self->top->bitmap;
    if (bitmap == 0)
        memset(root, 0, 32);
    else if (!(bitmap & (bitmap - 1)) && IS_LEAF(self->top->child[__builtin_ctz(bitmap)]))
        memcpy(root, self->top->hash[__builtin_ctz(bitmap)], 32);
    else
        node_hash(self->top, root);
    char hex[64];
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[root[i] >> 4];
        hex[2 * i + 1] = digits[root[i] & 0x0F];
    }
    return PyUnicode_FromStringAndSize(hex, 64);
}

static int check_usable(TreeObject *self) {
    if (self->broken) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the tree is unusable: an allocation failed during an earlier batch");
        return -1;
    }
    return 0;
}

/* One change of a batch, read from the dict while the GIL is held. */
typedef struct Change {
    const char *key;
    Py_ssize_t key_length;
    const char *value; /* NULL: delete */
    Py_ssize_t value_length;
} Change;

/* Apply changes[0..count) and hash the batch; runs without the GIL (no Python object is
   touched, memory comes from the raw allocator). Returns 0, -1 (out of memory) or -2
   (two keys with one path). */
static int apply_changes(TreeObject *self, const Change *changes, Py_ssize_t count) {
    int status = 0;
    for (Py_ssize_t i = 0; i < count && status == 0; i++) {
        uint8_t path[32];
        sha256(changes[i].key, (size_t)changes[i].key_length, path);
        if (changes[i].value == NULL) {
            status = tree_delete(self, path);
        } else {
            uint8_t value_hash[32];
            sha256(changes[i].value, (size_t)changes[i].value_length, value_hash);
            status = tree_set(self, path, value_hash);
        }
    }
    /* Keys already applied stay applied: hash them so the tree stays consistent. */
    rehash(self);
    return status;
}

static PyObject *Tree_apply_encoded(TreeObject *self, PyObject *changes) {
    if (check_usable(self) < 0)
        return NULL;
    if (!PyDict_Check(changes)) {
        PyErr_SetString(PyExc_TypeError, "changes must be a dict of str -> bytes or None");
        return NULL;
    }
    /* A private copy keeps every key and value alive while the GIL is released. */
    PyObject *items = PyDict_Items(changes);
    if (items == NULL)
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(items);
    Change *batch = PyMem_RawMalloc(sizeof(Change) * (size_t)(count ? count : 1));
    if (batch == NULL) {
        Py_DECREF(items);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 0);
        PyObject *value = PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 1);
        batch[i].key = PyUnicode_Check(key) ? PyUnicode_AsUTF8AndSize(key, &batch[i].key_length)
                                            : NULL;
        if (batch[i].key == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "state keys must be str");
            goto refused;
        }
        if (value == Py_None) {
            batch[i].value = NULL;
        } else if (PyBytes_Check(value)) {
            batch[i].value = PyBytes_AS_STRING(value);
            batch[i].value_length = PyBytes_GET_SIZE(value);
        } else {
            PyErr_SetString(PyExc_TypeError, "values must be bytes (encoded) or None");
            goto refused;
        }
    }
    int status;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    status = apply_changes(self, batch, count);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    PyMem_RawFree(batch);
    Py_DECREF(items);
    if (status == -1) {
        self->broken = 1;
        return PyErr_NoMemory();
    }
    if (status < 0) {
        PyErr_SetString(PyExc_RuntimeError, "two keys with the same path");
        return NULL;
    }
    return root_hex(self);
refused: /* nothing was applied */
    PyMem_RawFree(batch);
    Py_DECREF(items);
    return NULL;
}

static PyObject *Tree_root(TreeObject *self, void *closure) {
    (void)closure;
    if (check_usable(self) < 0)
        return NULL;
    return root_hex(self);
}

/* Append each node below `node` (and `node` itself unless skip_self) to `out` as bytes. */
static int collect(Node *node, int skip_self, PyObject *out) {
    uint8_t buf[3 + 16 * 32];
    if (!skip_self) {
        PyObject *data = PyBytes_FromStringAndSize((const char *)buf, node_bytes(node, buf));
        if (data == NULL || PyList_Append(out, data) < 0) {
            Py_XDECREF(data);
            return -1;
        }
        Py_DECREF(data);
    }
    for (int i = 0; i < 16; i++) {
        void *child = node->child[i];
        if (child == NULL)
            continue;
        if (!IS_LEAF(child)) {
            if (collect(child, 0, out) < 0)
                return -1;
            continue;
        }
        leaf_bytes(AS_LEAF(child), buf);
        PyObject *data = PyBytes_FromStringAndSize((const char *)buf, LEAF_BYTES);
        if (data == NULL || PyList_Append(out, data) < 0) {
            Py_XDECREF(data);
            return -1;
        }
        Py_DECREF(data);
    }
    return 0;
}

static PyObject *Tree_nodes(TreeObject *self, PyObject *unused) {
    (void)unused;
    if (check_usable(self) < 0)
        return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    uint16_t bitmap = self->top->bitmap;
    int lone_leaf = bitmap && !(bitmap & (bitmap - 1)) &&
                    IS_LEAF(self->top->child[__builtin_ctz(bitmap)]);
    if (collect(self->top, bitmap == 0 || lone_leaf, out) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

static void free_subtree(Node *node) {
    for (int i = 0; i < 16; i++) {
        void *child = node->child[i];
        if (child == NULL)
            continue;
        if (IS_LEAF(child))
            PyMem_RawFree(AS_LEAF(child));
        else
            free_subtree(child);
    }
    PyMem_RawFree(node);
}

static int Tree_init(TreeObject *self, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, ":Tree", keywords))
        return -1;
    if (self->top == NULL) {
        self->top = new_node();
        if (self->top == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

static void Tree_dealloc(TreeObject *self) {
    if (self->top != NULL && !self->broken)
        free_subtree(self->top);
    for (int depth = 0; depth < DEPTH; depth++)
        PyMem_RawFree(self->marks[depth].items);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Tree_methods[] = {
    {"apply_encoded", (PyCFunction)Tree_apply_encoded, METH_O,
     "apply_encoded(changes: dict[str, bytes | None]) -> str\n\n"
     "Set each key to the value whose canonical bytes are given (None deletes it); hash "
     "the changed nodes and return the new root as hex."},
    {"nodes", (PyCFunction)Tree_nodes, METH_NOARGS,
     "nodes() -> list[bytes]\n\nThe bytes of every node of the newest version (for proofs)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Tree_getset[] = {
    {"root", (getter)Tree_root, NULL, "The state root after the last batch, as hex.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TreeType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "contracts._memory_tree.Tree",
    .tp_basicsize = sizeof(TreeObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The newest version of a state tree, changed in place batch by batch.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Tree_init,
    .tp_dealloc = (destructor)Tree_dealloc,
    .tp_methods = Tree_methods,
    .tp_getset = Tree_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "contracts._memory_tree",
    .m_doc = "Compiled core of contracts.memory_tree.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__memory_tree(void) {
    if (PyType_Ready(&TreeType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&TreeType);
    if (PyModule_AddObject(m, "Tree", (PyObject *)&TreeType) < 0) {
        Py_DECREF(&TreeType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
