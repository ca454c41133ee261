import Foundation
import SignetCore

/// Runs helper programs (openssl, pkcs11-tool, the built signet binaries) for tests.
public enum Run {
    /// A child that exits before reading what a test writes to it (its stdin, or a pinentry that dies
    /// in the in-process prompt tests) must be an EPIPE, not a SIGPIPE that kills the whole test run.
    public static let ignoreBrokenPipes: Void = { signal(SIGPIPE, SIG_IGN) }()

    public struct Result: Sendable {
        public var status: Int32
        public var stdout: Data
        public var stderr: Data
        public var output: String { String(decoding: stdout, as: UTF8.self) }
        public var errors: String { String(decoding: stderr, as: UTF8.self) }
    }

    /// Runs `executable` (a path, or a name looked up in PATH) and waits for it.
    ///
    /// Built on posix_spawn and waitpid rather than Foundation's `Process`,
    /// whose `waitUntilExit` was seen to hang here when other threads spawn too.
    @discardableResult
    public static func command(
        _ executable: String, _ arguments: [String], stdin: Data? = nil,
        environment: [String: String]? = nil, timeout: TimeInterval = 120,
        onStandardError: ((Data) -> Void)? = nil
    ) throws -> Result {
        var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        guard pipe(&inPipe) == 0, pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw TestFailure("pipe failed") }
        // Close-on-exec, so other children spawned meanwhile do not hold these pipes open.
        for fd in inPipe + outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { env.forEach { free($0) } }
        // No signal blocked in the child: the test runner's threads block some (SIGTERM among them) and a child
        // inherits the mask, so a server a test script started ignored the script's `kill` and outlived the test.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        posix_spawnattr_setsigmask(&attributes, &unblocked)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let rv = executable.contains("/")
            ? posix_spawn(&pid, executable, &actions, &attributes, argv, env)
            : posix_spawnp(&pid, executable, &actions, &attributes, argv, env)
        close(inPipe[0]); close(outPipe[1]); close(errPipe[1])
        guard rv == 0 else {
            close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
            throw TestFailure("could not start \(executable): \(String(cString: strerror(rv)))")
        }
        Run.ignoreBrokenPipes
        if let stdin {
            stdin.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = write(inPipe[1], raw.baseAddress! + offset, raw.count - offset)
                    if n <= 0 { break }
                    offset += n
                }
            }
        }
        close(inPipe[1])

        var out = Data(), err = Data()
        var fds = [pollfd(fd: outPipe[0], events: Int16(POLLIN), revents: 0), pollfd(fd: errPipe[0], events: Int16(POLLIN), revents: 0)]
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while fds.contains(where: { $0.fd >= 0 }) {
            let remaining = Int32(max(0, deadline.timeIntervalSinceNow * 1000))
            if remaining == 0 {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                waitpid(pid, &status, 0)
                fds.filter { $0.fd >= 0 }.forEach { close($0.fd) }
                throw TestFailure("\(executable) \(arguments.joined(separator: " ")) did not finish within \(Int(timeout)) s")
            }
            if poll(&fds, nfds_t(fds.count), remaining) < 0 { if errno == EINTR { continue }; break }
            for index in fds.indices where fds[index].fd >= 0 && fds[index].revents != 0 {
                let n = read(fds[index].fd, &buffer, buffer.count)
                if n > 0 {
                    if index == 0 {
                        out.append(contentsOf: buffer[0..<n])
                    } else {
                        err.append(contentsOf: buffer[0..<n])
                        onStandardError?(err)
                    }
                } else if n == 0 || errno != EINTR {
                    close(fds[index].fd)
                    fds[index].fd = -1
                }
            }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7f == 0
        return Result(status: exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), stdout: out, stderr: err)
    }

    /// Runs and requires exit status 0.
    @discardableResult
    public static func checked(_ executable: String, _ arguments: [String], stdin: Data? = nil, environment: [String: String]? = nil) throws -> Result {
        let result = try command(executable, arguments, stdin: stdin, environment: environment)
        guard result.status == 0 else {
            throw TestFailure("\(executable) \(arguments.joined(separator: " ")) exited \(result.status): \(result.errors)\(result.output)")
        }
        return result
    }
}

/// A failure in test plumbing (not an assertion).
public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Files and folders the tests use.
public enum TestPaths {
    /// The repository's top folder.
    public static let repository: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url
    }()

    /// Where the built executables are: `SIGNET_BIN_DIR` (set by scripts/test) or `.build/debug`.
    public static var binaries: URL {
        if let dir = ProcessInfo.processInfo.environment["SIGNET_BIN_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        return repository.appendingPathComponent(".build/debug")
    }

    /// `Tests/testdata`: real S/MIME messages and keys (provenance in its README.md).
    public static var testData: URL { repository.appendingPathComponent("Tests/testdata") }

    /// The environment of a user whose HOME and XDG directories all live under `home`
    /// (this process's environment otherwise).
    public static func userEnvironment(home: URL) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = home.path
        environment["XDG_DATA_HOME"] = home.appendingPathComponent("data").path
        environment["XDG_CONFIG_HOME"] = home.appendingPathComponent("config").path
        environment["XDG_STATE_HOME"] = home.appendingPathComponent("state").path
        environment["XDG_RUNTIME_DIR"] = home.appendingPathComponent("run").path
        return environment
    }

    /// Copies a program that a test will run. The copy is written by `cp` in a process of its own: a file
    /// this process had open for writing is inherited by any child another test forks meanwhile, and
    /// running the copy then fails with "Text file busy" (ETXTBSY) until that child has exec'd.
    public static func copyExecutable(_ source: String, to destination: String) throws {
        let result = try Run.command("/bin/cp", [source, destination])
        guard result.status == 0 else { throw TestFailure("cp \(source) \(destination): \(result.errors)") }
    }

    /// A new empty temporary directory.
    public static func temporaryDirectory(_ prefix: String = "signet-test") throws -> URL {
        Run.ignoreBrokenPipes
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// Runs a long blocking test body on a thread of `BlockingTestExecutor`, so that it does not hold one
/// of the few threads of Swift's cooperative pool (two on a two-core machine) for its whole run, which
/// starves the async tests running beside it. It runs in the test's own task (a task executor
/// preference, not a detached thread), so an `#expect` in it is recorded against that test.
public func offPool<T>(_ body: @escaping () throws -> T) async throws -> T {
    let box = UncheckedSendable(body)
    return try await withTaskExecutorPreference(BlockingTestExecutor.shared) {
        UncheckedSendable(try box.value())
    }.value
}

/// Threads for test code that blocks (subprocesses, sockets, event streams read as they come): a job
/// waits for a free thread of its own, and a thread is added whenever none is free, so no job waits for
/// another to finish its blocking.
public final class BlockingTestExecutor: TaskExecutor, @unchecked Sendable {
    public static let shared = BlockingTestExecutor()
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var idle = 0

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        jobs.append(unowned)
        // More jobs waiting than threads waiting for them: one more thread (a thread that was signalled
        // counts as idle until it wakes, so this never leaves a job behind one that blocks).
        let start = jobs.count > idle
        condition.signal()
        condition.unlock()
        if start {
            let executor = UncheckedSendable(self)
            if !DetachedThread.start(stackSize: 8 << 20, { executor.value.work() }) { fatalError("could not start a thread for a test") }
        }
    }

    private func work() {
        condition.lock()
        while true {
            while jobs.isEmpty {
                idle += 1
                condition.wait()
                idle -= 1
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
            condition.lock()
        }
    }
}

/// A value handed across threads that the caller knows is used by one thread at a time.
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
