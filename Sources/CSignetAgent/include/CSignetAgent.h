#ifndef CSIGNETAGENT_H
#define CSIGNETAGENT_H

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/// Marks the process not dumpable: no core image, and other processes of the same user can no
/// longer ptrace it or read its memory through /proc. prctl is variadic, so Swift cannot call it.
/// Returns 0, or -1 with errno set.
static inline int csignetagent_set_undumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L);
}

/// A pidfd for the process at the other end of the Unix socket `fd`, taken by the kernel when it
/// connected (SO_PEERPIDFD, Linux 6.5), so it cannot name a process that reused the pid. Returns -1
/// with errno ENOPROTOOPT on older kernels. The option is not in every libc's headers, so it is here.
static inline int csignetagent_peer_pidfd(int fd) {
    int pidfd = -1;
    socklen_t length = sizeof(pidfd);
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
    if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &length) != 0) return -1;
    return pidfd;
}

/// pidfd_open(2) (syscall 434; syscall() is variadic, so Swift cannot call it). -1 with errno set.
static inline int csignetagent_pidfd_open(int pid) {
    return (int)syscall(434, pid, 0);
}

/// Whether the process a pidfd refers to is still alive: pidfd_send_signal(2) (syscall 424) with
/// signal 0 fails with ESRCH once it has exited, even if its pid now belongs to another process.
static inline int csignetagent_pidfd_alive(int pidfd) {
    if (syscall(424, pidfd, 0, (void *)0, 0) == 0) return 1;
    return errno == EPERM ? 1 : 0;
}

#endif
