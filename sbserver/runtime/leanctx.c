/*
 * Lean QuickJS contexts for the function workers.
 *
 * The quickjs binding makes every context with JS_NewContext, which installs every built-in
 * (typed arrays, Proxy, Map/Set, Promise, BigInt ...). That is most of the cost of the fresh
 * context each run gets. A worker loads this library with RTLD_GLOBAL before the binding, so
 * the binding's call to JS_NewContext lands here; the worker then says, per context, which
 * built-ins the code it is about to run can use (sb_lean_select), and only those are installed.
 *
 * The engine's own functions are looked up in the library that called us (dladdr on the return
 * address), so nothing here depends on how the binding was built or where it lives. Until a
 * selection is made, and when the engine does not export what a lean context needs, the
 * engine's own JS_NewContext runs: the worst case is a full context, never a missing one.
 *
 * Contexts and runtimes are opaque pointers here; no engine header is needed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

typedef struct JSRuntime JSRuntime;
typedef struct JSContext JSContext;
typedef JSContext *(*new_context_fn)(JSRuntime *);
typedef void (*add_intrinsic_fn)(JSContext *);

/* The order is the bit order of sb_lean_select's mask (see contexts.py). */
static const char *const intrinsic_names[] = {
    "JS_AddIntrinsicBaseObjects",
    "JS_AddIntrinsicDate",
    "JS_AddIntrinsicEval",
    "JS_AddIntrinsicStringNormalize",
    "JS_AddIntrinsicRegExp",
    "JS_AddIntrinsicJSON",
    "JS_AddIntrinsicProxy",
    "JS_AddIntrinsicMapSet",
    "JS_AddIntrinsicTypedArrays",
    "JS_AddIntrinsicPromise",
    "JS_AddIntrinsicBigInt",
};
#define N_INTRINSICS (sizeof(intrinsic_names) / sizeof(intrinsic_names[0]))

static int resolved; /* 0: not tried, 1: lean contexts possible, 2: only the engine's own, -1: lost */
static new_context_fn engine_new_context;
static new_context_fn engine_new_context_raw;
static add_intrinsic_fn intrinsics[N_INTRINSICS];
static unsigned long long selection;  /* 0: everything, as the engine does */

static void resolve(void *caller) {
    Dl_info info;
    void *lib;
    size_t i;

    resolved = -1;
    if (!dladdr(caller, &info) || !info.dli_fname)
        return;
    lib = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (!lib)
        return;
    /* a handle's lookups stay inside that library and its dependencies: never back to us.
       The caller called JS_NewContext through the dynamic linker, so the engine exports it. */
    engine_new_context = (new_context_fn)dlsym(lib, "JS_NewContext");
    if (!engine_new_context)
        return;
    resolved = 2;
    engine_new_context_raw = (new_context_fn)dlsym(lib, "JS_NewContextRaw");
    if (!engine_new_context_raw)
        return;
    for (i = 0; i < N_INTRINSICS; i++) {
        intrinsics[i] = (add_intrinsic_fn)dlsym(lib, intrinsic_names[i]);
        if (!intrinsics[i])
            return;
    }
    resolved = 1;
}

/* Which built-ins the next contexts get: bit i is intrinsic_names[i]; 0 means all of them. */
void sb_lean_select(unsigned long long mask) { selection = mask; }

/* After the first context: 1 when lean contexts are possible, 2 when every context is full. */
int sb_lean_state(void) { return resolved; }

unsigned sb_lean_count(void) { return (unsigned)N_INTRINSICS; }

JSContext *JS_NewContext(JSRuntime *rt) {
    JSContext *ctx;
    size_t i;

    if (!resolved)
        resolve(__builtin_return_address(0));
    if (resolved < 0)
        return NULL; /* only when the engine itself cannot be found again, which its call rules out */
    if (!selection || resolved != 1)
        return engine_new_context(rt);
    ctx = engine_new_context_raw(rt);
    if (!ctx)
        return NULL;
    for (i = 0; i < N_INTRINSICS; i++)
        if (selection & (1ULL << i))
            intrinsics[i](ctx);
    return ctx;
}
