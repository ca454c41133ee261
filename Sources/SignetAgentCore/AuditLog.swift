#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SignetCore

/// Who is on the other end of a connection, from `SO_PEERCRED` and `/proc`.
public struct PeerProcess: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    public var executable: String

    public init(pid: Int32, uid: UInt32, executable: String) {
        self.pid = pid; self.uid = uid; self.executable = executable
    }

    /// Reads the executable path of `pid` from `/proc/<pid>/exe` (empty when not allowed).
    public static func describe(pid: Int32, uid: UInt32) -> PeerProcess {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/\(pid)/exe", &buffer, buffer.count - 1)
        let path = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        return PeerProcess(pid: pid, uid: uid, executable: path)
    }
}

/// One audit record. Never holds an access code or message content: the
/// fields are names, URIs, numbers and outcomes only.
public struct AuditEvent: Sendable {
    public var action: String
    public var result: String
    public var token: String?
    public var key: String?
    public var peer: PeerProcess?
    public var durationMilliseconds: Double?
    public var detail: String?

    public init(action: String, result: String, token: String? = nil, key: String? = nil, peer: PeerProcess? = nil,
                durationMilliseconds: Double? = nil, detail: String? = nil) {
        self.action = action; self.result = result; self.token = token; self.key = key; self.peer = peer
        self.durationMilliseconds = durationMilliseconds; self.detail = detail
    }
}

/// The audit log: one JSON object per line in `$XDG_STATE_HOME/signet/audit.log`,
/// rotated to `audit.log.1` … when it passes `maximumBytes`.
///
/// Every line is written with one `write(2)` on an `O_APPEND` descriptor, so
/// lines from concurrent writers never interleave.
public final class AuditLog: Sendable {
    public let path: String
    public let maximumBytes: Int
    public let keptFiles: Int
    private let state: Mutex<Int32>

    /// - Parameters:
    ///   - maximumBytes: size after which the file is rotated (default 1 MiB).
    ///   - keptFiles: rotated files kept besides the current one.
    public init(directory: String, maximumBytes: Int = 1 << 20, keptFiles: Int = 3) {
        _ = FileIO.makeDirectories(directory)
        path = directory + "/audit.log"
        self.maximumBytes = maximumBytes
        self.keptFiles = keptFiles
        state = Mutex(open(directory + "/audit.log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600))
    }

    deinit {
        state.withLock { if $0 >= 0 { close($0) } }
    }

    /// Appends `event` with the current time.
    public func record(_ event: AuditEvent) {
        let line = AuditLog.line(event, time: AuditLog.timestamp()) + "\n"
        state.withLock { fd in
            if fd < 0 { fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600) }
            guard fd >= 0 else { return }
            var info = stat()
            if fstat(fd, &info) == 0, Int(info.st_size) + line.utf8.count > maximumBytes {
                close(fd)
                rotate()
                fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
                guard fd >= 0 else { return }
            }
            var bytes = Array(line.utf8)
            _ = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        }
    }

    private func rotate() {
        for index in stride(from: keptFiles - 1, through: 1, by: -1) {
            rename("\(path).\(index)", "\(path).\(index + 1)")
        }
        if keptFiles > 0 { rename(path, "\(path).1") } else { unlink(path) }
    }

    /// The JSON line for `event`, keys in a fixed order.
    static func line(_ event: AuditEvent, time: String) -> String {
        var fields: [(String, String)] = [("time", JSONText.quote(time)), ("action", JSONText.quote(event.action)), ("result", JSONText.quote(event.result))]
        if let token = event.token { fields.append(("token", JSONText.quote(token))) }
        if let key = event.key { fields.append(("key", JSONText.quote(key))) }
        if let peer = event.peer {
            fields.append(("uid", "\(peer.uid)"))
            fields.append(("pid", "\(peer.pid)"))
            fields.append(("exe", JSONText.quote(peer.executable)))
        }
        if let duration = event.durationMilliseconds {
            fields.append(("duration_ms", "\((duration * 1000).rounded() / 1000)"))
        }
        if let detail = event.detail { fields.append(("detail", JSONText.quote(detail))) }
        return "{" + fields.map { "\(JSONText.quote($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }

    /// UTC time with milliseconds, ISO 8601 ("2026-11-22T10:15:30.123Z").
    public static func timestamp(_ wall: Double? = nil) -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UTCTime.format(wall ?? (Double(now.tv_sec) + Double(now.tv_nsec) / 1e9), milliseconds: true)
    }
}

/// JSON string quoting without Foundation.
public enum JSONText {
    public static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
