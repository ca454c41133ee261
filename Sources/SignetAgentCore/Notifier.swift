#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SignetCore

/// Desktop notifications of key use (`notify = sign,decrypt` in the configuration), through
/// `org.freedesktop.Notifications.Notify` on the session bus.
///
/// Coalesced: the first use by a program of a key is shown at once; further uses within `notify-seconds`
/// seconds are counted and shown as one notification when the window ends. Never on the request
/// path: `gdbus` runs on a thread of its own, is given `timeout` seconds and then killed, so a
/// missing or hung notification server costs an operation nothing.
final class Notifier: Sendable {
    let timeout: Double
    /// The program that sends (argv[0] first); tests may replace it.
    let command: String
    private let state = Mutex<[String: Entry]>([:])

    private struct Entry {
        var windowEnds: Double
        var pending: Int
        var flushScheduled: Bool
    }

    init(timeout: Double = 5, command: String = "gdbus") {
        self.timeout = timeout
        self.command = command
    }

    /// Notes one use of `key` by `program` for `operation`, sending a notification now or at the window's end.
    /// - Parameters:
    ///   - bus: where to send: the client's session bus when it passes `SessionBus.problem`, checked again just before
    ///     `gdbus` runs, else the agent's own; nothing is sent without either.
    ///   - window: uses within this many seconds of a notification are counted into the next.
    func used(program: String, pid: Int32, key: String, operation: KeyOperation, bus: NotificationBus, window: Double) {
        guard bus.address() != nil else { return }
        let id = program + "\u{0}" + key + "\u{0}" + operation.rawValue
        let now = MonotonicClock.seconds()
        enum Step { case send, schedule(Double), nothing }
        let step = state.withLock { entries -> Step in
            if var entry = entries[id], now < entry.windowEnds {
                entry.pending += 1
                defer { entry.flushScheduled = true; entries[id] = entry }
                return entry.flushScheduled ? .nothing : .schedule(entry.windowEnds - now)
            }
            if entries.count >= 256 { entries = entries.filter { now < $0.value.windowEnds } }
            entries[id] = Entry(windowEnds: now + window, pending: 0, flushScheduled: false)
            return .send
        }
        let verb = Notifier.verb(operation)
        switch step {
        case .send:
            send(summary: "Signet: \(key) \(verb)", body: "\(program) (pid \(pid)) \(verb) with the key \(key).", bus: bus)
        case .schedule(let delay):
            _ = DetachedThread.start(stackSize: 128 * 1024) { [self] in
                usleep(UInt32(max(0, delay) * 1_000_000))
                let count = state.withLock { entries -> Int in
                    guard let entry = entries[id] else { return 0 }
                    entries[id] = Entry(windowEnds: MonotonicClock.seconds() + window, pending: 0, flushScheduled: false)
                    return entry.pending
                }
                guard count > 0 else { return }
                send(summary: "Signet: \(key) \(verb) \(count) more time\(count == 1 ? "" : "s")",
                     body: "\(program) \(verb) with the key \(key) \(count) more time\(count == 1 ? "" : "s") in \(Int(window)) s.", bus: bus)
            }
        case .nothing:
            break
        }
    }

    static func verb(_ operation: KeyOperation) -> String {
        switch operation {
        case .sign: "signed"
        case .decrypt: "decrypted"
        case .derive: "derived a shared secret"
        }
    }

    /// The agent's own session bus: `DBUS_SESSION_BUS_ADDRESS` when given, else `$XDG_RUNTIME_DIR/bus` when it exists.
    static func sessionBus(_ environment: [String: String]) -> String? {
        if let address = environment["DBUS_SESSION_BUS_ADDRESS"], !address.isEmpty { return address }
        if let runtime = environment["XDG_RUNTIME_DIR"], FileIO.exists(runtime + "/bus") { return "unix:path=" + runtime + "/bus" }
        return nil
    }

    /// `text` as a GVariant string literal (what `gdbus call` parses its arguments as).
    static func literal(_ text: String) -> String {
        var out = "'"
        for scalar in text.unicodeScalars {
            switch scalar {
            case "'": out += "\\'"
            case "\\": out += "\\\\"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "'"
    }

    /// The `gdbus call` arguments for one notification.
    func arguments(summary: String, body: String) -> [String] {
        [command, "call", "--session", "--dest", "org.freedesktop.Notifications", "--object-path", "/org/freedesktop/Notifications",
         "--method", "org.freedesktop.Notifications.Notify", "--timeout", String(Int(max(1, timeout))),
         "'Signet'", "uint32 0", "'dialog-password'", Notifier.literal(summary), Notifier.literal(body), "@as []", "@a{sv} {}", "int32 8000"]
    }

    private func send(summary: String, body: String, bus: NotificationBus) {
        let arguments = arguments(summary: summary, body: body)
        _ = DetachedThread.start(stackSize: 128 * 1024) { [self] in
            // Checked at use: the client's socket may have gone, or been replaced, since it was sent.
            guard let bus = bus.address() else { return }
            var environment = ["DBUS_SESSION_BUS_ADDRESS=" + bus, "PATH=" + (ProcessEnvironment.value("PATH") ?? "/usr/bin:/bin")]
            for name in ["HOME", "XDG_RUNTIME_DIR"] { if let value = ProcessEnvironment.value(name) { environment.append(name + "=" + value) } }
            guard let pid = Notifier.spawn(arguments, environment: environment) else { return }
            let deadline = MonotonicClock.seconds() + timeout
            var status: Int32 = 0
            while waitpid(pid, &status, WNOHANG) == 0 {
                if MonotonicClock.seconds() > deadline {
                    kill(pid, SIGKILL)
                    waitpid(pid, &status, 0)
                    return
                }
                usleep(20_000)
            }
        }
    }

    /// Starts `arguments[0]` (searched in PATH) with standard input, output and error on /dev/null.
    private static func spawn(_ arguments: [String], environment: [String]) -> pid_t? {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in 0...2 { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp = environment.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        // The agent blocks SIGTERM, SIGINT and SIGHUP in every thread (it takes them with sigwait): the child must not inherit that.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        guard posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp) == 0 else { return nil }
        return pid
    }
}

/// Where one notification may go: the session bus address a client sent (used only when it passes
/// `SessionBus.problem` for the client's uid, at each use) and the agent's own.
struct NotificationBus: Sendable {
    var client: String?
    var uid: uid_t
    var own: String?

    /// The address to use now: the client's when it passes the checks, else the agent's own.
    func address() -> String? { SessionBus.choose(client: client, uid: uid, own: own) }
}
