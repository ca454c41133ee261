#ifndef CSIGNETAGENT_H
#define CSIGNETAGENT_H

#include <sys/prctl.h>

/// Marks the process not dumpable: no core image, and other processes of the same user can no
/// longer ptrace it or read its memory through /proc. prctl is variadic, so Swift cannot call it.
/// Returns 0, or -1 with errno set.
static inline int csignetagent_set_undumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L);
}

#endif
