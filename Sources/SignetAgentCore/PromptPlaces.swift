#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// The places a client named for its prompts, checked again at the moment a pinentry is started.
///
/// `clientEnvironment` is checked when it arrives, but a connection lives for hours: a terminal can be
/// closed and its `/dev/pts/N` given to another user, an X server can stop and another take its number.
/// So just before a pinentry starts, each place is checked against the caller as it is then:
///
/// - **tty**: a character device owned by the caller's uid (`lstat`, no link followed), and still the
///   caller's: its controlling terminal (`tty_nr` in `/proc/PID/stat`) or open by it (an entry of
///   `/proc/PID/fd` that is the same device). The caller is the connection's process, with the start
///   time it connected with (a reused pid is another process). A pts that was closed and opened again by
///   another user belongs to that user, and is refused.
/// - **DISPLAY**: a local display (`:N`, `unix:N`) must have its socket `/tmp/.X11-unix/XN` there, a socket
///   owned by the caller or root (the X server runs as one or the other), with an X server listening on it
///   (connected to, then closed). A display on `localhost`/`127.0.0.1`/`::1` (ssh's X11 forwarding) must
///   have a listener on port 6000+N owned by the caller or root (`/proc/net/tcp`, `tcp6`). A display on
///   another host is refused: nothing on this machine can say whose screen it is.
///   Not checked: Xlib tries the abstract socket `@/tmp/.X11-unix/XN` before the file, and an abstract
///   socket has no owner in the file system. A running X server holds that name itself, so another user can
///   only take it from an X server started without it (`-nolisten local`); the file's live listener is what
///   is checked.
/// - **WAYLAND_DISPLAY** and **XAUTHORITY**: the checks made on arrival (a socket, a file of the caller's),
///   made again.
enum PromptPlaces {
    /// `environment` with every place that no longer passes dropped, and why each was dropped.
    static func recheck(_ environment: ClientEnvironment, caller: PeerProcess) -> (environment: ClientEnvironment, refused: [String]) {
        var checked = environment
        var refused: [String] = []
        let alive = callerAlive(caller)
        if let tty = environment.tty {
            if let reason = alive ?? terminalReason(tty, caller: caller) {
                refused.append("terminal \(Console.safe(tty)): \(reason)")
                checked.tty = nil
            }
        }
        if let display = environment.display {
            if let reason = alive ?? displayReason(display, uid: caller.uid) {
                refused.append("DISPLAY \(Console.safe(display)): \(reason)")
                checked.display = nil
                checked.xauthority = nil
            }
        }
        if let wayland = environment.waylandDisplay {
            let path = wayland.hasPrefix("/") ? wayland : (environment.runtimeDirectory ?? "") + "/" + wayland
            if let reason = alive ?? ownedReason(path, S_IFSOCK, "Wayland socket", uids: [caller.uid]) {
                refused.append("WAYLAND_DISPLAY \(Console.safe(wayland)): \(reason)")
                checked.waylandDisplay = nil
            }
        }
        if let xauthority = checked.xauthority, let reason = ownedReason(xauthority, S_IFREG, "file", uids: [caller.uid]) {
            refused.append("XAUTHORITY: \(reason)")
            checked.xauthority = nil
        }
        return (checked, refused)
    }

    /// Why the caller cannot be asked at all (it has exited, or its pid is another process's now), or nil.
    static func callerAlive(_ caller: PeerProcess) -> String? {
        if caller.exited { return "the program that asked has exited" }
        guard let started = caller.startTime else { return nil }
        return Caller.startTime(caller.pid) == started ? nil : "the program that asked (pid \(caller.pid)) has exited"
    }

    /// Why `path` is not the caller's terminal now, or nil.
    static func terminalReason(_ path: String, caller: PeerProcess) -> String? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return "it is gone (closed)" }
        guard info.st_mode & S_IFMT == S_IFCHR else { return "it is not a terminal" }
        guard deviceNumbers(UInt64(info.st_rdev)) != (5, 0) else { return "/dev/tty names no terminal in particular" }
        guard info.st_uid == caller.uid else {
            return "it belongs to uid \(info.st_uid) now, not to the caller's uid \(caller.uid) (it was closed and opened again by someone else)"
        }
        if let controlling = controllingTerminal(caller.pid), controlling == deviceNumbers(UInt64(info.st_rdev)) { return nil }
        if holds(caller.pid, device: info) { return nil }
        return "it is no longer the terminal of the program that asked (pid \(caller.pid)): not its controlling terminal, and not open in it"
    }

    /// The (major, minor) of `pid`'s controlling terminal (field 7 of `/proc/PID/stat`), or nil.
    static func controllingTerminal(_ pid: Int32) -> (UInt32, UInt32)? {
        guard let stat = FileIO.readText("/proc/\(pid)/stat", limit: 4096), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the name: state, ppid, pgrp, session, tty_nr.
        guard fields.count > 4, let number = UInt32(fields[4]), number != 0 else { return nil }
        return ((number >> 8) & 0xFFF, (number & 0xFF) | ((number >> 12) & 0xFFF00))
    }

    /// glibc's `major` and `minor` (macros, which Swift does not import) of a `dev_t`.
    static func deviceNumbers(_ device: UInt64) -> (UInt32, UInt32) {
        (UInt32(truncatingIfNeeded: ((device >> 8) & 0xFFF) | ((device >> 32) & ~0xFFF)),
         UInt32(truncatingIfNeeded: (device & 0xFF) | ((device >> 12) & ~0xFF)))
    }

    /// Whether one of `pid`'s descriptors is the device `device` (same device number, inode and file system).
    static func holds(_ pid: Int32, device: stat) -> Bool {
        guard let directory = opendir("/proc/\(pid)/fd") else { return false }
        defer { closedir(directory) }
        var checked = 0
        while let entry = readdir(directory), checked < 4096 {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.first?.isNumber == true else { continue }
            checked += 1
            var info = stat()
            guard stat("/proc/\(pid)/fd/\(name)", &info) == 0 else { continue }
            if info.st_mode & S_IFMT == S_IFCHR, info.st_rdev == device.st_rdev, info.st_ino == device.st_ino, info.st_dev == device.st_dev { return true }
        }
        return false
    }

    /// Why `display` is not a screen of the caller's (or root's) now, or nil.
    static func displayReason(_ display: String, uid: uid_t) -> String? {
        guard let colon = display.lastIndex(of: ":") else { return "not an X display name" }
        let host = String(display[..<colon])
        let digits = display[display.index(after: colon)...].prefix { $0.isNumber }
        guard let number = Int(digits), number < 10_000 else { return "not an X display name" }
        let owners: Set<uid_t> = [uid, 0]
        switch host {
        case "", "unix":
            let path = "/tmp/.X11-unix/X\(number)"
            if let reason = ownedReason(path, S_IFSOCK, "X server socket", uids: owners) { return reason }
            guard listening(path) else { return "no X server listens on \(path)" }
            return nil
        case "localhost", "127.0.0.1", "::1", "[::1]":
            let listeners = tcpListeners(port: 6000 + number)
            guard !listeners.isEmpty else { return "nothing listens on localhost port \(6000 + number)" }
            if let other = listeners.first(where: { !owners.contains($0) }) {
                return "localhost port \(6000 + number) is held by uid \(other), not by the caller's uid \(uid) or root"
            }
            return nil
        default:
            return "a display on another host (\(Console.safe(host))) cannot be checked from here; use a local display or a terminal"
        }
    }

    /// Why `path` is not a `type` owned by one of `uids`, or nil.
    static func ownedReason(_ path: String, _ type: mode_t, _ what: String, uids: Set<uid_t>) -> String? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return "\(what) \(Console.safe(path)) does not exist" }
        guard info.st_mode & S_IFMT == type else { return "\(Console.safe(path)) is not a \(what)" }
        guard uids.contains(info.st_uid) else { return "\(what) \(Console.safe(path)) belongs to uid \(info.st_uid), not the caller's" }
        return nil
    }

    /// Whether something accepts connections on the Unix socket `path` (connected to, then closed at once).
    static func listening(_ path: String) -> Bool {
        guard let fd = try? UnixSocket.connect(path) else { return false }
        close(fd)
        return true
    }

    /// The uids of the sockets listening on loopback (or every address) port `port`, from `/proc/net/tcp` and `tcp6`.
    static func tcpListeners(port: Int) -> [uid_t] {
        var owners: [uid_t] = []
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            for line in (FileIO.readText(file, limit: 4 << 20) ?? "").split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                // sl local_address rem_address st tx:rx tr:when retrnsmt uid
                guard fields.count > 7, fields[3] == "0A" else { continue }
                let local = fields[1].split(separator: ":")
                guard local.count == 2, Int(local[1], radix: 16) == port else { continue }
                let address = String(local[0])
                let loopback = address == "0100007F" || address == "00000000" || address == "00000000000000000000000001000000"
                    || address == "00000000000000000000000000000000" || address.hasSuffix("7F")
                guard loopback, let owner = uid_t(fields[7]) else { continue }
                owners.append(owner)
            }
        }
        return owners
    }
}

/// At most one prompt per screen or terminal at a time.
///
/// A prompt waits for its turn at every place its client named (terminal, X display, Wayland socket),
/// in the order the prompts came, taking all of them at once (so two prompts never wait on each other);
/// a prompt whose deadline passes while it waits is not shown, and its request is refused. Two programs
/// asking on one terminal at once would otherwise share its keyboard: the answer typed at the prompt shown
/// last could reach the other.
final class PromptQueue: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Places in use, each with the program whose prompt is there.
    private var busy: [String: String] = [:]
    /// Prompts waiting, in order of arrival.
    private var waiting: [(ticket: UInt64, places: Set<String>)] = []
    private var nextTicket: UInt64 = 0
    /// Told (in words) when a prompt has to wait for its turn: the agent logs it, so that a person who
    /// wonders why no prompt appears can read which one holds the place.
    private let onWait: (@Sendable (String) -> Void)?

    init(onWait: (@Sendable (String) -> Void)? = nil) {
        self.onWait = onWait
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(changed, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(changed)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        changed.deallocate()
    }

    /// A prompt's turn at its places; `end()` gives them to the next prompt.
    final class Turn: @unchecked Sendable {
        private let queue: PromptQueue
        private let places: Set<String>
        private var ended = false
        fileprivate init(_ queue: PromptQueue, _ places: Set<String>) { self.queue = queue; self.places = places }
        deinit { end() }
        func end() {
            guard !ended else { return }
            ended = true
            queue.release(places)
        }
    }

    /// Why a prompt was not shown: its deadline passed while `holders` had its places.
    struct Waited: Error, Sendable, Equatable {
        var seconds: Double
        var holders: [String]
        /// "a prompt for /usr/bin/x on /dev/pts/3"-style words.
        var words: String { holders.isEmpty ? "another prompt" : holders.joined(separator: ", ") }
    }

    /// Waits until every place in `places` is free and no earlier prompt waits for one of them, then takes
    /// them for `holder` (a program, for the words of whoever waits behind it).
    /// - Throws: `Waited` when `deadline` (monotonic seconds) passes first.
    func turn(at places: Set<String>, for holder: String, until deadline: Double) throws(Waited) -> Turn {
        let start = MonotonicClock.seconds()
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        let ticket = nextTicket
        nextTicket += 1
        waiting.append((ticket, places))
        var told = false
        while true {
            let free = places.allSatisfy { busy[$0] == nil }
            let first = !waiting.contains { $0.ticket < ticket && !$0.places.isDisjoint(with: places) }
            if free && first {
                waiting.removeAll { $0.ticket == ticket }
                for place in places { busy[place] = holder }
                return Turn(self, places)
            }
            let now = MonotonicClock.seconds()
            if now >= deadline {
                waiting.removeAll { $0.ticket == ticket }
                // Prompts behind this one may go now.
                pthread_cond_broadcast(changed)
                let holders = places.sorted().compactMap { place in busy[place].map { "a prompt for \($0) on \(PromptQueue.words(place))" } }
                throw Waited(seconds: now - start, holders: Array(Set(holders)).sorted())
            }
            if !told, let onWait {
                told = true
                let holders = Set(places.compactMap { place in busy[place].map { "a prompt for \($0) on \(PromptQueue.words(place))" } })
                onWait("a prompt for \(holder) waits for its turn at \(places.sorted().map(PromptQueue.words).joined(separator: ", "))"
                       + (holders.isEmpty ? " (behind an earlier one)" : " behind \(holders.sorted().joined(separator: ", "))"))
            }
            var until = timespec()
            let whole = deadline.rounded(.down)
            until.tv_sec = Int(whole)
            until.tv_nsec = Int((deadline - whole) * 1e9)
            pthread_cond_timedwait(changed, mutex, &until)
        }
    }

    private func release(_ places: Set<String>) {
        pthread_mutex_lock(mutex)
        for place in places { busy[place] = nil }
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(mutex)
    }

    /// A place's key as words: "tty:/dev/pts/3" → "/dev/pts/3", "display::0" → "display :0".
    static func words(_ place: String) -> String {
        if place.hasPrefix("tty:") { return String(place.dropFirst(4)) }
        if place.hasPrefix("display:") { return "display " + place.dropFirst(8) }
        if place.hasPrefix("wayland:") { return "Wayland display " + place.dropFirst(8) }
        return place
    }
}

extension ClientEnvironment {
    /// The places a prompt for this client would use, as `PromptQueue` keys: the terminal, the X display
    /// (`:0`, `:0.0` and `unix:0` are one display) and the Wayland socket.
    var places: Set<String> {
        var places: Set<String> = []
        if let tty { places.insert("tty:" + tty) }
        if let display {
            var name = display.hasPrefix("unix:") ? String(display.dropFirst(4)) : display
            if let colon = name.lastIndex(of: ":"), let dot = name[colon...].firstIndex(of: ".") { name = String(name[..<dot]) }
            places.insert("display:" + name)
        }
        if let waylandDisplay {
            places.insert("wayland:" + (waylandDisplay.hasPrefix("/") ? waylandDisplay : (runtimeDirectory ?? "") + "/" + waylandDisplay))
        }
        return places
    }
}
