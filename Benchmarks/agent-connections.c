// agent-connections: opens N connections to a signet-agent, one after another, and on each sends
// hello and reads its answer: the cost of a connection being accepted, identified and greeted.
// Not a test: time it against another agent in the same run, alternating, e.g.
//   cc -O2 -o /tmp/agent-connections Benchmarks/agent-connections.c
//   /usr/bin/time -f %e /tmp/agent-connections "$XDG_RUNTIME_DIR/signet/agent.sock" 2000
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int read_exactly(int fd, unsigned char *buffer, size_t count) {
    size_t done = 0;
    while (done < count) {
        ssize_t n = read(fd, buffer + done, count - done);
        if (n <= 0) return -1;
        done += (size_t)n;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SOCKET COUNT\n", argv[0]);
        return 2;
    }
    // hello from a client named "t", id 1 (docs/protocol.md, "Example").
    static const unsigned char hello[] = {0, 0, 0, 0x1a, 0x01, 0, 0, 0, 1, 's', 'i', 'g', 'n', 'e', 't', '-', 'a', 'g', 'e',
                                          'n', 't', 0, 1, 0, 1, 0, 0, 0, 1, 't'};
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof address.sun_path) {
        fprintf(stderr, "socket path too long\n");
        return 2;
    }
    strcpy(address.sun_path, argv[1]);
    int count = atoi(argv[2]);
    unsigned char answer[65536 + 4];
    for (int i = 0; i < count; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
            perror("connect");
            return 1;
        }
        if (write(fd, hello, sizeof hello) != (ssize_t)sizeof hello || read_exactly(fd, answer, 4) != 0) {
            fprintf(stderr, "no answer to hello on connection %d\n", i + 1);
            return 1;
        }
        size_t length = ((size_t)answer[0] << 24) | ((size_t)answer[1] << 16) | ((size_t)answer[2] << 8) | answer[3];
        if (length > 65536 || read_exactly(fd, answer + 4, length) != 0 || answer[4] != 0x81) {
            fprintf(stderr, "unexpected answer on connection %d\n", i + 1);
            return 1;
        }
        close(fd);
    }
    return 0;
}
