#if canImport(Glibc)
import Glibc
#endif
import CSignetAgent
import SignetCore

/// The process at the other end of one connection: identified when it connects, and again before
/// each key operation, so a program that connects and then executes another is judged as the new one.
///
/// The pid comes from `SO_PEERCRED`; a pidfd (the kernel's own for the connecting process,
/// `SO_PEERPIDFD`, else `pidfd_open`) pins the process, so that `/proc/PID` read while the pidfd is
/// alive, with the same start time before and after, is that process and not one that reused its pid.
/// Used by its connection's thread only (after the accepting thread made it), hence `@unchecked Sendable`.
final class Caller: @unchecked Sendable {
    let pid: Int32
    let uid: UInt32
    private let pidfd: Int32
    /// As identified at the latest check.
    private(set) var peer: PeerProcess
    /// As identified when it connected.
    let original: PeerProcess

    /// Identifies the peer of the connected socket `fd` whose `SO_PEERCRED` gave `pid` and `uid`.
    init(socket fd: Int32, pid: Int32, uid: UInt32) {
        self.pid = pid
        self.uid = uid
        var pidfd = csignetagent_peer_pidfd(fd)
        if pidfd < 0 { pidfd = csignetagent_pidfd_open(pid) }
        self.pidfd = pidfd
        peer = Caller.identify(pid: pid, uid: uid, pidfd: pidfd)
        original = peer
    }

    deinit { if pidfd >= 0 { close(pidfd) } }

    /// Reads the process again (before a key operation): its executable, script and start time.
    /// A change is kept, with what it connected as; a process that has exited stays exited.
    @discardableResult
    func recheck() -> PeerProcess {
        guard !peer.exited else { return peer }
        var now = Caller.identify(pid: pid, uid: uid, pidfd: pidfd)
        if let started = original.startTime, now.startTime != started { now = PeerProcess(pid: pid, uid: uid, executable: "", exited: true) }
        if !now.sameProgram(as: original) { now.connectedAs = original.program }
        peer = now
        return now
    }

    /// What `/proc/PID` says of `pid` now; `exited` when, with a pidfd (≥ 0), that process is gone
    /// when the reads end, or, without one, the start time moved while they ran.
    static func identify(pid: Int32, uid: UInt32, pidfd: Int32) -> PeerProcess {
        let gone = PeerProcess(pid: pid, uid: uid, executable: "", exited: true)
        guard pid > 0 else { return gone }
        // With a pidfd, the process alive after the reads had the pid throughout them: one read of the start
        // time, after the others, names it. Without one, an unchanged start time around the reads stands in.
        let before = pidfd >= 0 ? nil : startTime(pid)
        var executable = link("/proc/\(pid)/exe") ?? ""
        var deleted = false
        if executable.hasSuffix(" (deleted)") {
            executable.removeLast(" (deleted)".count)
            deleted = true
        }
        // The arguments only for an interpreter (its script): every connection is identified, `signet sign` per message.
        let script = Interpreters.isInterpreter(executable) ? Interpreters.script(commandLine(pid), cwd: link("/proc/\(pid)/cwd")) : nil
        let after = startTime(pid)
        if pidfd >= 0 {
            guard after != nil, csignetagent_pidfd_alive(pidfd) == 1 else { return gone }
        } else if let before, before != after {
            return gone  // the pid now names another process
        }
        return PeerProcess(pid: pid, uid: uid, executable: executable, deleted: deleted, script: script, startTime: after)
    }

    /// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks since boot.
    static func startTime(_ pid: Int32) -> UInt64? {
        guard let stat = FileIO.readBytes("/proc/\(pid)/stat", limit: 4096), let close = stat.lastIndex(of: 0x29) else { return nil }
        // After "pid (comm)" (comm may hold spaces and parentheses) come fields 3, 4, … separated by one space.
        var field = 2
        var value: UInt64 = 0
        var digits = 0
        for byte in stat[(close + 1)...] {
            if byte == 0x20 {
                if field == 22 { break }
                field += 1
                continue
            }
            guard field == 22 else { continue }
            guard byte >= 0x30, byte <= 0x39, digits < 19 else { return nil }
            value = value * 10 + UInt64(byte - 0x30)
            digits += 1
        }
        return field == 22 && digits > 0 ? value : nil
    }

    private static func link(_ path: String) -> String? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { buffer in
            let n = readlink(path, buffer.baseAddress!, buffer.count - 1)
            guard n > 0 else { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[..<n]), as: UTF8.self)
        }
    }

    /// The first arguments of `/proc/PID/cmdline` (enough to find a script).
    private static func commandLine(_ pid: Int32) -> [String] {
        guard let bytes = FileIO.readBytes("/proc/\(pid)/cmdline", limit: 16 << 10) else { return [] }
        return bytes.split(separator: 0, omittingEmptySubsequences: false).prefix(16).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// Interpreters whose programs are scripts: a rule names the interpreter and the script, and
/// Signet shows both ("/usr/bin/python3.11 /home/me/bin/sign.py").
enum Interpreters {
    /// File names without their version (`python3.11` → `python`).
    static let names: Set<String> = [
        "python", "perl", "ruby", "node", "nodejs", "bash", "sh", "dash", "zsh", "ksh", "mksh", "fish", "tclsh", "wish",
        "lua", "luajit", "php", "Rscript", "guile", "gawk", "awk", "osascript", "pwsh", "deno", "bun", "java",
    ]

    static func isInterpreter(_ executable: String) -> Bool {
        // On the UTF-8 bytes: every connection is asked this.
        let bytes = executable.utf8
        var end = bytes.endIndex
        while end > bytes.startIndex, bytes[bytes.index(before: end)] == 0x2F { end = bytes.index(before: end) }
        var start = end
        while start > bytes.startIndex, bytes[bytes.index(before: start)] != 0x2F { start = bytes.index(before: start) }
        while end > start, case let last = bytes[bytes.index(before: end)], (0x30...0x39).contains(last) || last == 0x2E || last == 0x2D {
            end = bytes.index(before: end)
        }
        guard end > start else { return false }
        return names.contains(String(executable[start..<end]))
    }

    /// The script in an interpreter's arguments: the first that is not an option, made absolute against
    /// the process's working directory and with symbolic links resolved; `-c`, `-e` (inline code) or
    /// `-m NAME` (a module); nil for an interactive interpreter.
    static func script(_ arguments: [String], cwd: String?) -> String? {
        var index = 1
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "-c" || argument == "-e" || argument == "-E" { return argument }
            if argument == "-m", index + 1 < arguments.count { return "-m " + arguments[index + 1] }
            if argument == "--" { index += 1; break }
            if argument.hasPrefix("-"), argument != "-" { index += 1; continue }
            break
        }
        guard index < arguments.count, !arguments[index].isEmpty, arguments[index] != "-" else { return nil }
        var path = arguments[index]
        if !path.hasPrefix("/") {
            guard let cwd else { return path }
            path = (cwd == "/" ? "" : cwd) + "/" + path
        }
        return ClientPolicy.resolved(path)
    }
}
