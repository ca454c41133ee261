import Foundation
import SignetAgentCore
import Testing

@Suite("Audit log lines")
struct AuditLineTests {
    @Test("JSON quoting escapes quotes, backslashes and control characters, and keeps other text as it is, non-ASCII included")
    func quoting() throws {
        #expect(JSONText.quote("pkcs11:token=Demo;id=%01") == "\"pkcs11:token=Demo;id=%01\"")
        #expect(JSONText.quote("") == "\"\"")
        #expect(JSONText.quote("a\"b\\c\nd\re\tf\u{1}g") == "\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\"")
        #expect(JSONText.quote("Zoë \u{202E}\u{7F}") == "\"Zoë \u{202E}\u{7F}\"")
        for text in ["plain", "with \"quotes\"", "tab\there", "\u{1B}[2J", "é\u{0}"] {
            let decoded = try JSONSerialization.jsonObject(with: Data(JSONText.quote(text).utf8), options: .fragmentsAllowed) as? String
            #expect(decoded == text)
        }
    }

    @Test("Records from many threads at once are whole lines of valid JSON, none lost")
    func concurrentRecords() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("signet-audit-\(UUID().uuidString.prefix(8))")
        let log = AuditLog(directory: directory.path)
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for index in 0..<50 {
                log.record(AuditEvent(action: "sign", result: "ok", token: "pkcs11:token=T\(thread)", key: "key \"\(index)\"",
                                      peer: PeerProcess(pid: 1, uid: 2, executable: "/bin/x"), durationMilliseconds: 0.5))
            }
        }
        let lines = try String(contentsOfFile: log.path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 400)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["action"] as? String == "sign")
        }
    }
}
