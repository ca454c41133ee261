/* The allocator size query of the Swift runtime linked into libsignet-pkcs11.so.

   Swift's standard library asks malloc_usable_size() how much room an allocation really has and
   uses all of it, assuming the answer is a multiple of the word size (its own invariant,
   `allocSize % MemoryLayout<Int>.stride == 0`, checked only in debug builds of the library). A
   native String of 64 bytes or more then keeps an 8-byte "breadcrumbs" pointer in the last
   word-aligned 8 bytes of that room.

   Inside Chromium, malloc is PartitionAlloc, whose BackupRefPtr keeps a 4-byte reference count at
   the end of each slot and answers malloc_usable_size() with the slot size less those 4 bytes:
   284 for a 288-byte slot. Swift put its breadcrumbs pointer at bytes 280..287 of such an
   allocation, over the reference count; freeing the String then tripped PartitionAlloc's check
   and Chromium died with SIGTRAP (seen with gdb: a hardware watchpoint on the count fired in
   __StringStorage.create, and the trap followed at the String's free). glibc and mozjemalloc
   answer multiples of 8, which is why Firefox, Thunderbird and every other host were unharmed.

   So the module answers the runtime's size query itself, with the host's answer rounded down to
   a multiple of the word size: never more than the host allows, and never less than was asked
   for (Swift asks for multiples of 16). The definition binds only within this library: the
   version script (exports.map) keeps it out of the dynamic symbol table, so the host's own
   malloc_usable_size, and every other library's, are untouched. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

typedef size_t (*csignet_usable_size_fn)(void *);

size_t malloc_usable_size(void *pointer) {
    static csignet_usable_size_fn host;
    csignet_usable_size_fn query = __atomic_load_n(&host, __ATOMIC_ACQUIRE);
    if (query == NULL) {
        /* The process's own allocator: the host's when it replaces malloc (Chromium exports its
           malloc_usable_size), else libc's. This definition is local, so the lookup never finds it. */
        query = (csignet_usable_size_fn)dlsym(RTLD_DEFAULT, "malloc_usable_size");
        if (query == NULL || query == malloc_usable_size) query = (csignet_usable_size_fn)dlsym(RTLD_NEXT, "malloc_usable_size");
        if (query == NULL || query == malloc_usable_size) return 0;
        __atomic_store_n(&host, query, __ATOMIC_RELEASE);
    }
    return query(pointer) & ~(sizeof(void *) - 1);
}
