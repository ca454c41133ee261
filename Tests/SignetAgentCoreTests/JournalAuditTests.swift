import Foundation
import Glibc
import SignetAgentCore
import Testing

/// The datagrams `AuditLog` sends to the journal, received on a datagram socket bound where the test points
/// the log (a stand-in for journald's socket, which needs root and a mount namespace: scripts/test-install
/// runs the real systemd-journald and reads the entries with journalctl) and decoded by the rules of
/// systemd's "Native Journal Protocol".
@Suite("Audit records in the journal")
struct JournalAuditTests {
    /// A bound datagram socket and what arrives on it.
    final class Receiver {
        let path: String
        let fd: Int32

        init() throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("signet-journal-\(UUID().uuidString.prefix(8))").path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { buffer in
                for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            try #require(bound == 0)
        }

        deinit { close(fd); unlink(path) }

        /// The datagrams waiting, each decoded into its fields (a field given twice keeps both values).
        func entries() -> [[(String, String)]] {
            var entries: [[(String, String)]] = []
            var buffer = [UInt8](repeating: 0, count: 1 << 17)
            while true {
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                guard count > 0 else { return entries }
                entries.append(JournalAuditTests.decode(Array(buffer.prefix(count))))
            }
        }
    }

    /// `KEY=value\n`, or `KEY\n` + 64-bit little-endian length + bytes + `\n`.
    static func decode(_ bytes: [UInt8]) -> [(String, String)] {
        var fields: [(String, String)] = []
        var index = 0
        while index < bytes.count {
            let lineEnd = bytes[index...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            let line = bytes[index..<lineEnd]
            if let equals = line.firstIndex(of: UInt8(ascii: "=")) {
                fields.append((String(decoding: line[..<equals], as: UTF8.self), String(decoding: line[(equals + 1)...], as: UTF8.self)))
                index = lineEnd + 1
            } else {
                // A line without `=` must be a name followed by a length and that many bytes and a newline.
                guard lineEnd + 9 <= bytes.count else {
                    Issue.record("the datagram has a line without = and no length after it: \(String(decoding: line, as: UTF8.self))")
                    return fields
                }
                var length: UInt64 = 0
                for shift in 0..<8 { length |= UInt64(bytes[lineEnd + 1 + shift]) << (8 * UInt64(shift)) }
                let start = lineEnd + 9
                guard length < UInt64(bytes.count), start + Int(length) < bytes.count else {
                    Issue.record("the datagram's field \(String(decoding: line, as: UTF8.self)) claims \(length) bytes, more than it holds")
                    return fields
                }
                fields.append((String(decoding: line, as: UTF8.self), String(decoding: bytes[start..<(start + Int(length))], as: UTF8.self)))
                #expect(bytes[start + Int(length)] == UInt8(ascii: "\n"))
                index = start + Int(length) + 1
            }
        }
        return fields
    }

    static func value(_ name: String, in entry: [(String, String)]) -> [String] { entry.filter { $0.0 == name }.map(\.1) }

    static func temporaryDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("signet-audit-\(UUID().uuidString.prefix(8))").path
    }

    @Test("Each record becomes one entry with SIGNET_* fields, the caller's pid, uid and executable, and a MESSAGE; a newline travels in the length-prefixed form")
    func structuredEntry() throws {
        let receiver = try Receiver()
        let log = AuditLog(directory: Self.temporaryDirectory(), journal: JournalAudit(socketPath: receiver.path))
        log.record(AuditEvent(action: "unlock", result: "wrong-code", token: "pkcs11:token=Demo",
                              peer: PeerProcess(pid: 4242, uid: 1000, executable: "/usr/bin/thunderbird"), durationMilliseconds: 2.5,
                              detail: "2 tries left\nline two"))
        log.record(AuditEvent(action: "sign", result: "ok", token: "pkcs11:token=Demo", key: "pkcs11:token=Demo;id=%01",
                              peer: PeerProcess(pid: 7, uid: 1000, executable: "/usr/bin/signet")))
        let entries = receiver.entries()
        try #require(entries.count == 2)
        let unlock = entries[0]
        #expect(Self.value("SIGNET_ACTION", in: unlock) == ["unlock"])
        #expect(Self.value("SIGNET_RESULT", in: unlock) == ["wrong-code"])
        #expect(Self.value("SIGNET_TOKEN", in: unlock) == ["pkcs11:token=Demo"])
        #expect(Self.value("SIGNET_CLIENT_EXE", in: unlock) == ["/usr/bin/thunderbird"])
        #expect(Self.value("SIGNET_CLIENT_PID", in: unlock) == ["4242"])
        #expect(Self.value("SIGNET_CLIENT_UID", in: unlock) == ["1000"])
        #expect(Self.value("SIGNET_DETAIL", in: unlock) == ["2 tries left\nline two"])
        #expect(Self.value("PRIORITY", in: unlock) == ["4"])
        #expect(Self.value("SYSLOG_IDENTIFIER", in: unlock) == ["signet-agent"])
        #expect(Self.value("MESSAGE_ID", in: unlock) == [JournalAudit.messageID])
        #expect(Self.value("MESSAGE", in: unlock).first?.hasPrefix("unlock wrong-code: pkcs11:token=Demo by /usr/bin/thunderbird (pid 4242, uid 1000)") == true)
        #expect(Self.value("SIGNET_KEY", in: entries[1]) == ["pkcs11:token=Demo;id=%01"])
        #expect(Self.value("PRIORITY", in: entries[1]) == ["6"])
        // The file has the same two records: the journal is in addition to it.
        let lines = try String(contentsOfFile: log.path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
    }

    @Test("Records held back by the failure budget go to neither the file nor the journal; the summary goes to both")
    func budget() throws {
        let receiver = try Receiver()
        let log = AuditLog(directory: Self.temporaryDirectory(), failureBurst: 2, failureInterval: 3600,
                           journal: JournalAudit(socketPath: receiver.path))
        let peer = PeerProcess(pid: 9, uid: 1000, executable: "/usr/bin/python3")
        for _ in 0..<5 { log.record(AuditEvent(action: "sign", result: "refused", peer: peer)) }
        log.record(AuditEvent(action: "lock", result: "ok"))
        let actions = receiver.entries().map { Self.value("SIGNET_ACTION", in: $0).first ?? "" }
        #expect(actions == ["sign", "sign", "audit-suppressed", "lock"])
        let lines = try String(contentsOfFile: log.path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == actions.count)
    }

    @Test("With no journald listening, recording still writes the file")
    func noJournald() throws {
        let log = AuditLog(directory: Self.temporaryDirectory(), journal: JournalAudit(socketPath: "/nonexistent/signet-journal-socket"))
        log.record(AuditEvent(action: "lock", result: "ok"))
        #expect(try String(contentsOfFile: log.path, encoding: .utf8).contains("\"action\":\"lock\""))
        #expect(JournalAudit(socketPath: "/nonexistent/signet-journal-socket").send(AuditEvent(action: "lock", result: "ok")) == false)
    }
}
