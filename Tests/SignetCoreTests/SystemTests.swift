import Foundation
import SignetCore
import Synchronization
import Testing

/// Signals the EINTR test's handler has taken (a handler can reach only globals).
private let signalsHandled = Atomic<Int>(0)

private final class Counter: Sendable {
    let value = Atomic<Int>(0)
    var current: Int { value.load(ordering: .relaxed) }
}

/// A pipe whose ends no child inherits (pipe2 is not in the Glibc module).
private func closeOnExecPipe(_ fds: inout [Int32]) -> Bool {
    guard pipe(&fds) == 0 else { return false }
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    return true
}

@Suite("System: the one layer for system calls", .serialized)
struct SystemCallTests {
    @Test("a call a real signal interrupts (EINTR) is made again, and its result comes back")
    func retriesInterruptedCall() throws {
        var fds: [Int32] = [-1, -1]
        #expect(closeOnExecPipe(&fds))
        defer { close(fds[0]); close(fds[1]) }
        // A handler without SA_RESTART, so the signal makes read(2) fail with EINTR instead of being restarted by the kernel.
        var action = sigaction(), previous = sigaction()
        action.__sigaction_handler.sa_handler = { _ in signalsHandled.add(1, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        #expect(sigaction(SIGURG, &action, &previous) == 0)
        defer { sigaction(SIGURG, &previous, nil) }
        var unblock = sigset_t(), oldMask = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGURG)
        pthread_sigmask(SIG_UNBLOCK, &unblock, &oldMask)
        defer { pthread_sigmask(SIG_SETMASK, &oldMask, nil) }

        let attempts = Counter(), finished = Counter(), helperDone = DispatchSemaphore(value: 0)
        let reader = pthread_self(), writer = fds[1]
        let before = signalsHandled.load(ordering: .relaxed)
        // Interrupts the read until it has been made a second time (bounded), then gives it a byte.
        Thread {
            let deadline = Date() + 10
            while attempts.current < 2 && finished.current == 0 && Date() < deadline {
                pthread_kill(reader, SIGURG)
                usleep(5_000)
            }
            if finished.current == 0 { var byte: UInt8 = 42; _ = write(writer, &byte, 1) }
            helperDone.signal()
        }.start()
        var byte: UInt8 = 0
        let result = Result { () throws(SystemError) -> Int in
            try System.call("read") {
                attempts.value.add(1, ordering: .relaxed)
                return read(fds[0], &byte, 1)
            }
        }
        finished.value.add(1, ordering: .relaxed)
        helperDone.wait()
        #expect(try result.get() == 1)
        #expect(byte == 42)
        #expect(attempts.current >= 2, "the read was interrupted and made again")
        #expect(signalsHandled.load(ordering: .relaxed) > before)
    }

    @Test("a failed call is thrown as its name and errno, described by strerror")
    func typedErrno() {
        #expect(throws: SystemError("open", ENOENT)) {
            try System.call("open") { open("/nonexistent-signet-directory/file", O_RDONLY) }
        }
        #expect(throws: SystemError("posix_spawn", EACCES)) { try System.checked("posix_spawn") { EACCES } }
        #expect(SystemError("open", ENOENT).description == "open: No such file or directory")
        #expect(SystemError("connect", ECONNREFUSED).reason == "Connection refused")
        #expect(System.retrying { open("/nonexistent-signet-directory/file", O_RDONLY) } == -1 && errno == ENOENT)
        #expect(System.realPath("/nonexistent-signet-directory") == nil)
        #expect(System.realPath("/usr/../usr/./bin") == "/usr/bin")
    }
}

@Suite("Subprocess: how Signet starts programs", .serialized)
struct SubprocessTests {
    /// Runs `script` under /bin/sh with its standard output on a pipe, and returns what it wrote.
    func output(of script: String, standardInput: Subprocess.Stream? = nil) throws -> String {
        try output("/bin/sh", ["-c", script], standardInput: standardInput)
    }

    /// Runs `program` with its standard output on a pipe, and returns what it wrote.
    func output(_ program: String, _ arguments: [String], standardInput: Subprocess.Stream? = nil) throws -> String {
        var fds: [Int32] = [-1, -1]
        #expect(closeOnExecPipe(&fds))
        defer { close(fds[0]) }
        let child: Subprocess
        do {
            child = try standardInput.map { try Subprocess(program, arguments: arguments, standardInput: $0, standardOutput: .descriptor(fds[1])) }
                ?? Subprocess(program, arguments: arguments, standardOutput: .descriptor(fds[1]))
        } catch {
            close(fds[1])
            throw error
        }
        close(fds[1])
        var text = Data(), buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = System.retrying { read(fds[0], &buffer, buffer.count) }
            if n <= 0 { break }
            text.append(contentsOf: buffer[..<n])
        }
        #expect(try child.wait(timeout: 30) == .exited(0))
        return String(decoding: text, as: UTF8.self)
    }

    /// The pids of processes in group `group` that are not zombies (from /proc/PID/stat).
    func livingMembers(ofGroup group: pid_t) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { $0.allSatisfy(\.isNumber) }.filter { pid in
            guard let stat = FileIO.readText("/proc/\(pid)/stat", limit: 4096), let close = stat.lastIndex(of: ")") else { return false }
            // After "pid (comm) ": state, ppid, pgrp.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && fields[2] == "\(group)" && fields[0] != "Z"
        }
    }

    @Test("the time bound of wait kills a child that outlives it, with its group")
    func timeBoundKills() throws {
        let child = try Subprocess("/bin/sh", arguments: ["-c", "sleep 30 & wait"], group: .processGroup)
        let start = MonotonicClock.seconds()
        #expect(try child.wait(timeout: 0.3) == .timedOut)
        #expect(MonotonicClock.seconds() - start < 10, "wait returned at its bound, not when sleep 30 ended")
        // The group's other member (the sleep) was killed too: soon none of the group is alive (a killed orphan
        // may stay a zombie until whoever adopts it reaps it).
        let until = MonotonicClock.seconds() + 5
        while !livingMembers(ofGroup: child.pid).isEmpty && MonotonicClock.seconds() < until { usleep(10_000) }
        #expect(livingMembers(ofGroup: child.pid).isEmpty)
        #expect(try Subprocess("/bin/true").wait(timeout: 30) == .exited(0))
        #expect(try Subprocess("/bin/sh", arguments: ["-c", "exit 3"]).wait() == .exited(3))
    }

    @Test("standard input is /dev/null unless said otherwise, even when the starter's is something else")
    func standardInputIsNull() throws {
        // This process's standard input becomes a pipe for the moment of the spawn, so an inherited one would show.
        var fds: [Int32] = [-1, -1]
        #expect(closeOnExecPipe(&fds))
        let saved = dup(0)
        #expect(saved >= 0)
        dup2(fds[0], 0)
        let seen: String
        do {
            defer { dup2(saved, 0); close(saved); close(fds[0]); close(fds[1]) }
            seen = try output(of: "readlink /proc/self/fd/0")
            #expect(try output(of: "readlink /proc/self/fd/0", standardInput: .inherit).hasPrefix("pipe:"), "the check can see a pipe")
        }
        #expect(seen == "/dev/null\n")
    }

    @Test("the child starts with no signal blocked, though the thread that starts it blocks some")
    func signalMaskEmpty() throws {
        var blocked = sigset_t(), old = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGTERM)
        sigaddset(&blocked, SIGUSR2)
        pthread_sigmask(SIG_BLOCK, &blocked, &old)
        defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
        // grep itself, not a shell: dash unblocks signals as it starts, which would hide an inherited mask.
        let text = try output("/bin/grep", ["SigBlk", "/proc/self/status"])
        #expect(text == "SigBlk:\t0000000000000000\n")
    }

    @Test("a program that cannot be started is a SystemError naming posix_spawn")
    func missingProgram() {
        #expect(throws: SystemError("posix_spawn", ENOENT)) { try Subprocess("/nonexistent-signet-program") }
    }
}
