/* One batch update of the validators' state tree (compiled core of
 * contracts.state_tree.apply_changes).
 *
 * Same trie as contracts/state_tree.py (docs/STATE.md §3): a key's path is sha256(key),
 * a prefix with no key is empty, with one key that key's leaf, with more an internal
 * node; leaf = 0x00 || path || value hash, internal = 0x01 || bitmap (2 bytes, big
 * endian) || the present children's hashes. Nodes are content-addressed and read from
 * the dicts the caller hands over (its caches), else through the store's get_node
 * (LevelDB on a validator): a Python call per node read was a tenth of the walk.
 *
 * Why: the Python walk (state_tree._Updater) slices node bytes, builds lists of sixteen
 * children and groups the updates level by level, and on a validator that was a fifth of
 * the CPU. This is a step-by-step port of it, and _Updater stays the reference it is
 * tested against: the same nodes are read in the same order (this batch's new nodes
 * first, then the store), the same nodes made (quirks included: a leaf saved again beside
 * a deleted absent key, a one-child node collapsed onto its child when that is a leaf),
 * the same stored nodes reported stale, the same errors raised.
 *
 * Inside the walk a hash is 32 bytes and all zero means the empty subtree (the Python
 * b""): a stored node with an all-zero child is corrupt, and SHA-256 never gives zero.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_trie.h"

#define LEAF_TAG 0x00
#define INTERNAL_TAG 0x01
#define LEAF_BYTES 65
#define NODE_MAX (3 + 16 * 32) /* the longest node: an internal node with 16 children */
#define DEPTH 64               /* nibbles in a path */
#define CHUNK_BYTES 65536

static const uint8_t EMPTY[32];

static inline int is_empty(const uint8_t *hash) { return memcmp(hash, EMPTY, 32) == 0; }

static inline unsigned popcount(unsigned bits) { return (unsigned)__builtin_popcount(bits); }

/* One update: set the key at `path` to the value hashed to `value`, or delete it. */
typedef struct Update {
    uint8_t path[32];
    uint8_t value[32];
    int set; /* 0: delete */
} Update;

/* The end of the run of path-sorted updates from `start` sharing the nibble at `depth`
   (state_tree._groups). */
static size_t group_end(const Update *updates, size_t start, size_t count, int depth) {
    int index = nibble(updates[start].path, depth);
    size_t end = start + 1;
    while (end < count && nibble(updates[end].path, depth) == index)
        end++;
    return end;
}

/* A node made in this batch; its bytes live in the walk's chunks. */
typedef struct Entry {
    uint8_t hash[32];
    const uint8_t *data;
    size_t length;
    int walked; /* made again with the bytes of a stored node the walk went through */
} Entry;

typedef struct Chunk {
    struct Chunk *next;
    size_t used;
    uint8_t data[CHUNK_BYTES];
} Chunk;

typedef struct Walk {
    PyObject *get_node; /* borrowed */
    PyObject *maps;     /* borrowed: a tuple of dicts read before get_node */
    PyObject *error;    /* borrowed: StateTreeError */
    /* The new nodes in the order first made (as a dict keeps them), and an open-addressing
       index over them: slot = entry index + 1, 0 free. */
    Entry *entries;
    size_t count, capacity;
    uint32_t *slots;
    size_t slot_count; /* a power of two, or 0 */
    Chunk *chunks;
    /* The stored nodes walked through, in order (repeats allowed, as in the Python list). */
    uint8_t (*stale)[32];
    size_t stale_count, stale_capacity;
    /* update_one's nodes from the top of its walk down (DEPTH + 1 of them: the last one
       read may be at depth 64), allocated at first use. */
    uint8_t (*above)[NODE_MAX];
} Walk;

static void walk_free(Walk *w) {
    PyMem_Free(w->entries);
    PyMem_Free(w->slots);
    while (w->chunks != NULL) {
        Chunk *next = w->chunks->next;
        PyMem_Free(w->chunks);
        w->chunks = next;
    }
    PyMem_Free(w->stale);
    PyMem_Free(w->above);
}

static inline size_t slot_of(const uint8_t *hash, size_t slot_count) {
    uint64_t bits;
    memcpy(&bits, hash, sizeof bits);
    return (size_t)bits & (slot_count - 1);
}

static Entry *find(const Walk *w, const uint8_t *hash) {
    if (w->slot_count == 0)
        return NULL;
    size_t mask = w->slot_count - 1;
    for (size_t i = slot_of(hash, w->slot_count); w->slots[i]; i = (i + 1) & mask) {
        Entry *entry = &w->entries[w->slots[i] - 1];
        if (memcmp(entry->hash, hash, 32) == 0)
            return entry;
    }
    return NULL;
}

static int grow_slots(Walk *w) {
    size_t slot_count = w->slot_count ? w->slot_count * 2 : 1024;
    if (slot_count > UINT32_MAX) {
        PyErr_NoMemory();
        return -1;
    }
    uint32_t *slots = PyMem_Calloc(slot_count, sizeof(uint32_t));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    size_t mask = slot_count - 1;
    for (size_t e = 0; e < w->count; e++) {
        size_t i = slot_of(w->entries[e].hash, slot_count);
        while (slots[i])
            i = (i + 1) & mask;
        slots[i] = (uint32_t)(e + 1);
    }
    PyMem_Free(w->slots);
    w->slots = slots;
    w->slot_count = slot_count;
    return 0;
}

static uint8_t *chunk_alloc(Walk *w, size_t length) {
    if (w->chunks == NULL || CHUNK_BYTES - w->chunks->used < length) {
        Chunk *chunk = PyMem_Malloc(sizeof(Chunk));
        if (chunk == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        chunk->next = w->chunks;
        chunk->used = 0;
        w->chunks = chunk;
    }
    uint8_t *out = w->chunks->data + w->chunks->used;
    w->chunks->used += length;
    return out;
}

/* Hash `data` into `out` and keep it among the new nodes (once: the same bytes again are
   the same node). `out` may overlap `data`. */
static int save_node(Walk *w, const uint8_t *data, size_t length, uint8_t *out) {
    uint8_t hash[32];
    sha256(data, length, hash);
    if (find(w, hash) == NULL) {
        if ((w->count + 1) * 2 > w->slot_count && grow_slots(w) < 0)
            return -1;
        if (w->count == w->capacity) {
            size_t capacity = w->capacity ? w->capacity * 2 : 256;
            Entry *entries = PyMem_Realloc(w->entries, capacity * sizeof(Entry));
            if (entries == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            w->entries = entries;
            w->capacity = capacity;
        }
        uint8_t *copy = chunk_alloc(w, length);
        if (copy == NULL)
            return -1;
        memcpy(copy, data, length);
        Entry *entry = &w->entries[w->count];
        memcpy(entry->hash, hash, 32);
        entry->data = copy;
        entry->length = length;
        entry->walked = 0;
        size_t mask = w->slot_count - 1;
        size_t i = slot_of(hash, w->slot_count);
        while (w->slots[i])
            i = (i + 1) & mask;
        w->slots[i] = (uint32_t)(++w->count);
    }
    memcpy(out, hash, 32);
    return 0;
}

static int push_stale(Walk *w, const uint8_t *hash) {
    if (w->stale_count == w->stale_capacity) {
        size_t capacity = w->stale_capacity ? w->stale_capacity * 2 : 256;
        uint8_t(*stale)[32] = PyMem_Realloc(w->stale, capacity * 32);
        if (stale == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        w->stale = stale;
        w->stale_capacity = capacity;
    }
    memcpy(w->stale[w->stale_count++], hash, 32);
    return 0;
}

/* What the Python walk raises when a path runs past its 64 nibbles: only a store that
   returns nodes under the wrong hashes leads there (a cycle of internal nodes, or a leaf
   misplaced beside a path it shares the rest of). build() and update() check too, though
   with distinct paths they cannot get that deep with two or more entries. */
static int past_the_path(void) {
    PyErr_SetString(PyExc_IndexError, "string index out of range");
    return -1;
}

static int tree_error(Walk *w, const char *what, const uint8_t *hash) {
    static const char digits[] = "0123456789abcdef";
    char hex[65];
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[hash[i] >> 4];
        hex[2 * i + 1] = digits[hash[i] & 0x0F];
    }
    hex[64] = '\0';
    PyErr_Format(w->error, "%s tree node %s", what, hex);
    return -1;
}

/* state_tree._well_formed: a leaf, or an internal node with a consistent bitmap and no
   empty child hash. */
static int well_formed(const uint8_t *data, size_t length) {
    if (length == LEAF_BYTES && data[0] == LEAF_TAG)
        return 1;
    if (length < 3 || data[0] != INTERNAL_TAG)
        return 0;
    unsigned bitmap = (unsigned)data[1] << 8 | data[2];
    if (bitmap == 0 || length != 3 + 32 * (size_t)popcount(bitmap))
        return 0;
    for (size_t offset = 3; offset < length; offset += 32) {
        if (is_empty(data + offset))
            return 0;
    }
    return 1;
}

/* _Updater.load: the node's bytes into buf (NODE_MAX), from this batch or from the store. */
static int load(Walk *w, const uint8_t *hash, uint8_t *buf, size_t *length) {
    const Entry *entry = find(w, hash);
    if (entry != NULL) {
        memcpy(buf, entry->data, entry->length);
        *length = entry->length;
        return 0;
    }
    PyObject *key = PyBytes_FromStringAndSize((const char *)hash, 32);
    if (key == NULL)
        return -1;
    PyObject *data = NULL;
    Py_ssize_t map_count = w->maps == NULL ? 0 : PyTuple_GET_SIZE(w->maps);
    for (Py_ssize_t i = 0; data == NULL && i < map_count; i++) {
        data = PyDict_GetItemWithError(PyTuple_GET_ITEM(w->maps, i), key);
        if (data == NULL && PyErr_Occurred()) {
            Py_DECREF(key);
            return -1;
        }
        Py_XINCREF(data);
    }
    if (data == NULL)
        data = PyObject_CallOneArg(w->get_node, key);
    Py_DECREF(key);
    if (data == NULL)
        return -1;
    if (data == Py_None) {
        Py_DECREF(data);
        return tree_error(w, "missing", hash);
    }
    if (!PyBytes_Check(data)) {
        PyErr_Format(PyExc_TypeError, "a tree node must be bytes or None, not %.200s",
                     Py_TYPE(data)->tp_name);
        Py_DECREF(data);
        return -1;
    }
    const uint8_t *bytes = (const uint8_t *)PyBytes_AS_STRING(data);
    size_t size = (size_t)PyBytes_GET_SIZE(data);
    if (!well_formed(bytes, size)) {
        Py_DECREF(data);
        return tree_error(w, "corrupt", hash);
    }
    memcpy(buf, bytes, size);
    *length = size;
    Py_DECREF(data);
    return 0;
}

static int leaf(Walk *w, const uint8_t *path, const uint8_t *value, uint8_t *out) {
    uint8_t data[LEAF_BYTES];
    data[0] = LEAF_TAG;
    memcpy(data + 1, path, 32);
    memcpy(data + 33, value, 32);
    return save_node(w, data, LEAF_BYTES, out);
}

/* _Updater.save_internal: the internal node with these present children (joined), saved,
   unless it is empty or holds a single leaf, which then takes its place. `out` may
   overlap `children`. */
static int save_internal(Walk *w, unsigned bitmap, const uint8_t *children, uint8_t *out) {
    if ((bitmap & (bitmap - 1)) == 0) {
        if (bitmap == 0) {
            memset(out, 0, 32);
            return 0;
        }
        uint8_t buf[NODE_MAX];
        size_t length;
        if (load(w, children, buf, &length) < 0)
            return -1;
        if (length == LEAF_BYTES) {
            memmove(out, children, 32);
            return 0;
        }
    }
    uint8_t data[NODE_MAX];
    size_t length = 3 + 32 * (size_t)popcount(bitmap);
    data[0] = INTERNAL_TAG;
    data[1] = (uint8_t)(bitmap >> 8);
    data[2] = (uint8_t)(bitmap & 0xFF);
    memcpy(data + 3, children, length - 3);
    return save_node(w, data, length, out);
}

/* _Updater.internal: save_internal over 16 child slots (all zero where empty). */
static int internal(Walk *w, uint8_t children[16][32], uint8_t *out) {
    uint8_t joined[16 * 32];
    unsigned bitmap = 0;
    size_t count = 0;
    for (int i = 0; i < 16; i++) {
        if (!is_empty(children[i])) {
            bitmap |= 1u << i;
            memcpy(joined + 32 * count++, children[i], 32);
        }
    }
    return save_internal(w, bitmap, joined, out);
}

/* _Updater.build_pair: two entries (first < second) under one node where their paths
   part, below a chain of one-child nodes for the nibbles they share from `depth`. */
static int build_pair(Walk *w, int depth, const Update *first, const Update *second,
                      uint8_t *out) {
    int split = depth;
    for (;;) {
        if (split >= DEPTH)
            return past_the_path();
        if (nibble(first->path, split) != nibble(second->path, split))
            break;
        split++;
    }
    uint8_t pair[64];
    if (leaf(w, first->path, first->value, pair) < 0 ||
        leaf(w, second->path, second->value, pair + 32) < 0)
        return -1;
    unsigned bitmap = 1u << nibble(first->path, split) | 1u << nibble(second->path, split);
    uint8_t child[32];
    if (save_internal(w, bitmap, pair, child) < 0)
        return -1;
    while (split > depth) {
        split--;
        if (save_internal(w, 1u << nibble(first->path, split), child, child) < 0)
            return -1;
    }
    memcpy(out, child, 32);
    return 0;
}

/* _Updater.build: the subtree holding exactly entries[0..count) (path order, all set). */
static int build(Walk *w, int depth, const Update *entries, size_t count, uint8_t *out) {
    if (count == 0) {
        memset(out, 0, 32);
        return 0;
    }
    if (count == 1)
        return leaf(w, entries[0].path, entries[0].value, out);
    if (count == 2)
        return build_pair(w, depth, &entries[0], &entries[1], out);
    if (depth >= DEPTH)
        return past_the_path();
    uint8_t children[16][32];
    memset(children, 0, sizeof children);
    size_t start = 0;
    while (start < count) {
        int index = nibble(entries[start].path, depth);
        size_t end = group_end(entries, start, count, depth);
        if (build(w, depth + 1, entries + start, end - start, children[index]) < 0)
            return -1;
        start = end;
    }
    return internal(w, children, out);
}

/* _Updater.update_one: a single key; walk down to its slot, then re-hash the way back up. */
static int update_one(Walk *w, const uint8_t *node_hash, int depth, const Update *update,
                      uint8_t *out) {
    if (w->above == NULL) {
        w->above = PyMem_Malloc(sizeof(uint8_t[NODE_MAX]) * (DEPTH + 1));
        if (w->above == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    size_t lengths[DEPTH];
    int indexes[DEPTH];
    int levels = 0;
    uint8_t node[32], child[32];
    memcpy(node, node_hash, 32);
    for (;;) {
        if (is_empty(node)) {
            if (!update->set)
                memset(child, 0, 32);
            else if (leaf(w, update->path, update->value, child) < 0)
                return -1;
            break;
        }
        uint8_t *data = w->above[levels];
        size_t length;
        if (load(w, node, data, &length) < 0)
            return -1;
        if (length == LEAF_BYTES) {
            const uint8_t *leaf_path = data + 1, *leaf_value = data + 33;
            if (memcmp(leaf_path, update->path, 32) == 0) {
                if (push_stale(w, node) < 0)
                    return -1;
                if (!update->set)
                    memset(child, 0, 32);
                else if (leaf(w, update->path, update->value, child) < 0)
                    return -1;
            } else if (!update->set) {
                /* Deleting an absent key: the leaf stays (walked through and made again,
                   so it is neither new nor stale). */
                if (push_stale(w, node) < 0 || leaf(w, leaf_path, leaf_value, child) < 0)
                    return -1;
            } else {
                if (push_stale(w, node) < 0)
                    return -1;
                Update entries[2];
                int mine = memcmp(leaf_path, update->path, 32) < 0 ? 0 : 1;
                memcpy(entries[mine].path, leaf_path, 32);
                memcpy(entries[mine].value, leaf_value, 32);
                entries[mine].set = 1;
                entries[1 - mine] = *update;
                if (build(w, depth, entries, 2, child) < 0)
                    return -1;
            }
            break;
        }
        if (push_stale(w, node) < 0)
            return -1;
        if (depth >= DEPTH)
            return past_the_path();
        int index = nibble(update->path, depth);
        lengths[levels] = length;
        indexes[levels] = index;
        levels++;
        unsigned bit = 1u << index;
        unsigned bitmap = (unsigned)data[1] << 8 | data[2];
        if (bitmap & bit)
            memcpy(node, data + 3 + 32 * popcount(bitmap & (bit - 1)), 32);
        else
            memset(node, 0, 32);
        depth++;
    }
    uint8_t children[16 * 32];
    while (levels > 0) {
        levels--;
        const uint8_t *data = w->above[levels];
        size_t length = lengths[levels];
        unsigned bit = 1u << indexes[levels];
        unsigned bitmap = (unsigned)data[1] << 8 | data[2];
        size_t offset = 3 + 32 * (size_t)popcount(bitmap & (bit - 1));
        size_t before = offset - 3;
        if (bitmap & bit) {
            memcpy(children, data + 3, before);
            if (!is_empty(child)) {
                memcpy(children + before, child, 32);
                memcpy(children + before + 32, data + offset + 32, length - offset - 32);
            } else {
                bitmap &= ~bit;
                memcpy(children + before, data + offset + 32, length - offset - 32);
            }
        } else if (!is_empty(child)) {
            bitmap |= bit;
            memcpy(children, data + 3, before);
            memcpy(children + before, child, 32);
            memcpy(children + before + 32, data + offset, length - offset);
        } else {
            memcpy(children, data + 3, length - 3);
        }
        /* One child or none: maybe empty or a leaf; more: a node with these children. */
        if (save_internal(w, bitmap, children, child) < 0)
            return -1;
    }
    memcpy(out, child, 32);
    return 0;
}

/* _Updater.update: the subtree `node_hash` after updates[0..count) (path order). The
   updates are this call's to reorder: no one reads them after it. `out` may overlap
   `node_hash`. */
static int update(Walk *w, const uint8_t *node_hash, int depth, Update *updates, size_t count,
                  uint8_t *out) {
    if (count == 1)
        return update_one(w, node_hash, depth, &updates[0], out);
    if (is_empty(node_hash)) {
        size_t kept = 0;
        for (size_t i = 0; i < count; i++) {
            if (updates[i].set)
                updates[kept++] = updates[i];
        }
        return build(w, depth, updates, kept, out);
    }
    uint8_t hash[32], data[NODE_MAX];
    size_t length;
    memcpy(hash, node_hash, 32);
    if (load(w, hash, data, &length) < 0 || push_stale(w, hash) < 0)
        return -1;
    if (length == LEAF_BYTES) {
        /* Re-split the leaf together with the updates; an update of its own key wins. */
        const uint8_t *path = data + 1;
        int own = 0;
        for (size_t i = 0; i < count && !own; i++)
            own = memcmp(updates[i].path, path, 32) == 0;
        Update *merged = PyMem_Malloc(sizeof(Update) * (count + 1));
        if (merged == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        size_t kept = 0;
        int placed = own;
        for (size_t i = 0; i < count; i++) {
            if (!placed && memcmp(path, updates[i].path, 32) < 0) {
                memcpy(merged[kept].path, path, 32);
                memcpy(merged[kept].value, data + 33, 32);
                merged[kept++].set = 1;
                placed = 1;
            }
            if (updates[i].set)
                merged[kept++] = updates[i];
        }
        if (!placed) {
            memcpy(merged[kept].path, path, 32);
            memcpy(merged[kept].value, data + 33, 32);
            merged[kept++].set = 1;
        }
        int status = build(w, depth, merged, kept, out);
        PyMem_Free(merged);
        return status;
    }
    uint8_t children[16][32];
    unsigned bitmap = (unsigned)data[1] << 8 | data[2];
    size_t offset = 3;
    for (int i = 0; i < 16; i++) {
        if (bitmap >> i & 1) {
            memcpy(children[i], data + offset, 32);
            offset += 32;
        } else {
            memset(children[i], 0, 32);
        }
    }
    if (count > 0 && depth >= DEPTH)
        return past_the_path();
    size_t start = 0;
    while (start < count) {
        int index = nibble(updates[start].path, depth);
        size_t end = group_end(updates, start, count, depth);
        if (update(w, children[index], depth + 1, updates + start, end - start,
                   children[index]) < 0)
            return -1;
        start = end;
    }
    return internal(w, children, out);
}

static int by_path(const void *a, const void *b) {
    return memcmp(((const Update *)a)->path, ((const Update *)b)->path, 32);
}

/* The updates list as a path-sorted array (count into *count), or NULL with an error. */
static Update *read_updates(PyObject *list, size_t *count) {
    Py_ssize_t n = PyList_GET_SIZE(list);
    Update *updates = PyMem_Malloc(sizeof(Update) * (size_t)(n ? n : 1));
    if (updates == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "each update must be a (path, value hash) tuple");
            goto fail;
        }
        PyObject *path = PyTuple_GET_ITEM(item, 0), *value = PyTuple_GET_ITEM(item, 1);
        if (!PyBytes_Check(path) || (value != Py_None && !PyBytes_Check(value))) {
            PyErr_SetString(PyExc_TypeError, "an update's path must be bytes and its value "
                                             "hash bytes or None");
            goto fail;
        }
        if (PyBytes_GET_SIZE(path) != 32 || (value != Py_None && PyBytes_GET_SIZE(value) != 32)) {
            PyErr_SetString(PyExc_ValueError, "paths and value hashes are 32 bytes");
            goto fail;
        }
        memcpy(updates[i].path, PyBytes_AS_STRING(path), 32);
        updates[i].set = value != Py_None;
        if (updates[i].set)
            memcpy(updates[i].value, PyBytes_AS_STRING(value), 32);
        else
            memset(updates[i].value, 0, 32);
    }
    qsort(updates, (size_t)n, sizeof(Update), by_path);
    for (Py_ssize_t i = 1; i < n; i++) {
        if (memcmp(updates[i - 1].path, updates[i].path, 32) == 0) {
            PyErr_SetString(PyExc_ValueError, "two updates of the same path");
            goto fail;
        }
    }
    *count = (size_t)n;
    return updates;
fail:
    PyMem_Free(updates);
    return NULL;
}

/* The result: (root, {hash: bytes} of the nodes made that the old tree lacks, {hashes of
   the stored nodes walked through that were not made again}). A node made again with the
   same bytes (a value set to what it was) is in neither: it stays where it is stored. */
static PyObject *result(const Walk *w, const uint8_t *root) {
    for (size_t i = 0; i < w->stale_count; i++) {
        Entry *entry = find(w, w->stale[i]);
        if (entry != NULL)
            entry->walked = 1;
    }
    PyObject *out = PyTuple_New(3);
    if (out == NULL)
        return NULL;
    PyObject *root_bytes = PyBytes_FromStringAndSize((const char *)root, 32);
    if (root_bytes == NULL)
        goto fail;
    PyTuple_SET_ITEM(out, 0, root_bytes);
    PyObject *nodes = PyDict_New();
    if (nodes == NULL)
        goto fail;
    PyTuple_SET_ITEM(out, 1, nodes);
    for (size_t i = 0; i < w->count; i++) {
        const Entry *entry = &w->entries[i];
        if (entry->walked)
            continue;
        PyObject *key = PyBytes_FromStringAndSize((const char *)entry->hash, 32);
        PyObject *data = key == NULL ? NULL
                                     : PyBytes_FromStringAndSize((const char *)entry->data,
                                                                 (Py_ssize_t)entry->length);
        int status = data == NULL ? -1 : PyDict_SetItem(nodes, key, data);
        Py_XDECREF(key);
        Py_XDECREF(data);
        if (status < 0)
            goto fail;
    }
    PyObject *stale = PySet_New(NULL);
    if (stale == NULL)
        goto fail;
    PyTuple_SET_ITEM(out, 2, stale);
    for (size_t i = 0; i < w->stale_count; i++) {
        if (find(w, w->stale[i]) != NULL)
            continue;
        PyObject *key = PyBytes_FromStringAndSize((const char *)w->stale[i], 32);
        int status = key == NULL ? -1 : PySet_Add(stale, key);
        Py_XDECREF(key);
        if (status < 0)
            goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *state_tree_update(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *get_node, *root, *list, *error, *maps = NULL;
    if (!PyArg_ParseTuple(args, "OO!O!O|O!:update", &get_node, &PyBytes_Type, &root, &PyList_Type,
                          &list, &error, &PyTuple_Type, &maps))
        return NULL;
    for (Py_ssize_t i = 0; maps != NULL && i < PyTuple_GET_SIZE(maps); i++) {
        if (!PyDict_Check(PyTuple_GET_ITEM(maps, i))) {
            PyErr_SetString(PyExc_TypeError, "maps must be a tuple of dicts");
            return NULL;
        }
    }
    if (!PyCallable_Check(get_node)) {
        PyErr_SetString(PyExc_TypeError, "get_node must be callable");
        return NULL;
    }
    if (!PyExceptionClass_Check(error)) {
        PyErr_SetString(PyExc_TypeError, "error must be an exception class");
        return NULL;
    }
    if (PyBytes_GET_SIZE(root) != 32) {
        PyErr_SetString(PyExc_ValueError, "the root is 32 bytes");
        return NULL;
    }
    size_t count;
    Update *updates = read_updates(list, &count);
    if (updates == NULL)
        return NULL;
    Walk w;
    memset(&w, 0, sizeof w);
    w.get_node = get_node;
    w.maps = maps;
    w.error = error;
    uint8_t new_root[32];
    PyObject *out = NULL;
    if (update(&w, (const uint8_t *)PyBytes_AS_STRING(root), 0, updates, count, new_root) == 0)
        out = result(&w, new_root);
    walk_free(&w);
    PyMem_Free(updates);
    return out;
}

/* ---- what the walk is given -------------------------------------------------------- */

/* encode(value), checked to be bytes, with its SHA-256 in `digest`; NULL on error. */
static PyObject *encode_and_hash(PyObject *encode, PyObject *value, uint8_t digest[32]) {
    PyObject *data = PyObject_CallOneArg(encode, value);
    if (data != NULL && !PyBytes_Check(data)) {
        Py_DECREF(data);
        PyErr_SetString(PyExc_TypeError, "encode must return bytes");
        return NULL;
    }
    if (data != NULL)
        sha256(PyBytes_AS_STRING(data), (size_t)PyBytes_GET_SIZE(data), digest);
    return data;
}

/* (path, value hash) of one change, as the walk takes it; the value's bytes into
   `encoded`; and, when the key has a value now, its current leaf into `leaves`. */
static int hash_change(PyObject *key, PyObject *value, PyObject *current, PyObject *encode,
                       PyObject *updates, PyObject *encoded, PyObject *leaves) {
    Py_ssize_t key_length;
    const char *key_bytes = PyUnicode_AsUTF8AndSize(key, &key_length);
    if (key_bytes == NULL)
        return -1;
    uint8_t leaf[LEAF_BYTES];
    leaf[0] = LEAF_TAG;
    sha256(key_bytes, (size_t)key_length, leaf + 1); /* the path */
    if (current != Py_None) {
        PyObject *old = PyObject_CallOneArg(current, key);
        if (old == NULL)
            return -1;
        PyObject *data =
            old == Py_None ? Py_NewRef(Py_None) : encode_and_hash(encode, old, leaf + 33);
        Py_DECREF(old);
        if (data == NULL)
            return -1;
        int failed = 0;
        if (data != Py_None) {
            uint8_t leaf_hash[32];
            sha256(leaf, LEAF_BYTES, leaf_hash);
            PyObject *hash_object = PyBytes_FromStringAndSize((const char *)leaf_hash, 32);
            PyObject *leaf_object = PyBytes_FromStringAndSize((const char *)leaf, LEAF_BYTES);
            failed = hash_object == NULL || leaf_object == NULL ||
                     PyDict_SetItem(leaves, hash_object, leaf_object) < 0;
            Py_XDECREF(hash_object);
            Py_XDECREF(leaf_object);
        }
        Py_DECREF(data);
        if (failed)
            return -1;
    }
    PyObject *value_hash = Py_NewRef(Py_None);
    if (value != Py_None) {
        uint8_t digest[32];
        PyObject *data = encode_and_hash(encode, value, digest);
        int failed = data == NULL || PyDict_SetItem(encoded, key, data) < 0;
        Py_XDECREF(data);
        Py_DECREF(value_hash);
        value_hash = failed ? NULL : PyBytes_FromStringAndSize((const char *)digest, 32);
        if (value_hash == NULL)
            return -1;
    }
    PyObject *path = PyBytes_FromStringAndSize((const char *)leaf + 1, 32);
    PyObject *entry = path == NULL ? NULL : PyTuple_Pack(2, path, value_hash);
    Py_XDECREF(path);
    Py_DECREF(value_hash);
    if (entry == NULL)
        return -1;
    int failed = PyList_Append(updates, entry);
    Py_DECREF(entry);
    return failed;
}

static PyObject *state_tree_hash_changes(PyObject *self, PyObject *args) {
    PyObject *changes, *current, *encode;
    if (!PyArg_ParseTuple(args, "O!OO", &PyDict_Type, &changes, &current, &encode))
        return NULL;
    if ((current != Py_None && !PyCallable_Check(current)) || !PyCallable_Check(encode)) {
        PyErr_SetString(PyExc_TypeError, "current (or None) and encode must be callable");
        return NULL;
    }
    PyObject *updates = PyList_New(0), *encoded = PyDict_New(), *leaves = PyDict_New();
    if (updates == NULL || encoded == NULL || leaves == NULL)
        goto fail;
    /* A copy of the items: `current` and `encode` are Python code, and PyDict_Next must
       not run over a dict that could change meanwhile. */
    PyObject *items = PyDict_Items(changes);
    if (items == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *item = PyList_GET_ITEM(items, i);
        PyObject *key = PyTuple_GET_ITEM(item, 0), *value = PyTuple_GET_ITEM(item, 1);
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "state keys are strings");
            Py_DECREF(items);
            goto fail;
        }
        if (hash_change(key, value, current, encode, updates, encoded, leaves) < 0) {
            Py_DECREF(items);
            goto fail;
        }
    }
    Py_DECREF(items);
    PyObject *out = PyTuple_Pack(3, updates, encoded, leaves);
    Py_DECREF(updates);
    Py_DECREF(encoded);
    Py_DECREF(leaves);
    return out;
fail:
    Py_XDECREF(updates);
    Py_XDECREF(encoded);
    Py_XDECREF(leaves);
    return NULL;
}

static PyMethodDef methods[] = {
    {"hash_changes", state_tree_hash_changes, METH_VARARGS,
     "hash_changes(changes: dict[str, Any], current: Callable | None, encode: Callable)\n"
     "    -> tuple[list[tuple[bytes, bytes | None]], dict[str, bytes], dict[bytes, bytes]]\n\n"
     "state_tree._hashed and _current_leaves in one pass: (path, value hash or None) per "
     "change, each value set's bytes (encode(value)), and by hash the leaf each changed key "
     "has now (current(key) -> value or None; None: no leaves)."},
    {"update", state_tree_update, METH_VARARGS,
     "update(get_node, root: bytes, updates: list[tuple[bytes, bytes | None]], error: type,\n"
     "       maps: tuple[dict[bytes, bytes], ...] = ())\n"
     "    -> tuple[bytes, dict[bytes, bytes], set[bytes]]\n\n"
     "Apply (path, value hash or None to delete) updates, in any order, to the tree whose "
     "root hash is `root` (32 zero bytes: empty), reading stored nodes from the first of "
     "`maps` that holds them, else with get_node(hash) -> bytes | None. Returns the new root (zero when empty), the nodes made that the old "
     "tree lacks, and the stored nodes walked through that were not made again. A missing or corrupt node "
     "raises `error` (\"missing tree node <hex>\" / \"corrupt tree node <hex>\")."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "contracts._state_tree",
    .m_doc = "Compiled core of contracts.state_tree.apply_changes.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__state_tree(void) { return PyModule_Create(&module); }
