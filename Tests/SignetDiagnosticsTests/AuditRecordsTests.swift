import Foundation
import SignetDiagnostics
import Testing

/// `AuditRecords` (what `signet log` and `signet report` read from the audit log) and `SupportBundle.redacted`.
@Suite("Audit records and the support bundle")
struct AuditRecordsTests {
    let lines = [
        #"{"time":"2026-11-22T10:00:00.000Z","action":"unlock","result":"ok","token":"pkcs11:token=Work%20Card;serial=1","uid":1000,"pid":42,"exe":"/usr/bin/thunderbird","duration_ms":12.345}"#,
        "not an entry",
        #"{"time":"2026-11-22T11:00:00.000Z","action":"sign","result":"ok","token":"pkcs11:token=Work","key":"pkcs11:token=Work;object=mail;id=%01","uid":1000,"pid":43,"exe":"/usr/bin/python3","script":"/home/a/bin/tool.py"}"#,
        #"{"time":"2026-11-22T12:00:00.000Z","action":"unlock","result":"wrong-code","token":"pkcs11:token=Evil%1B%5B2J","key":"pkcs11:id=%0a%0b","pid":44,"exe":"/usr/bin/x","decision":"deny","rule":"rule 2","detail":"3 tries left"}"#,
    ]

    @Test("Entries at or after the cutoff, of the actions asked for, the newest up to the limit; lines that are not entries are skipped")
    func select() {
        #expect(AuditRecords.select(lines, cutoff: nil, actions: [], limit: nil).count == 3)
        #expect(AuditRecords.select(lines, cutoff: "2026-11-22T11:00", actions: [], limit: nil).map(\.entry.action) == ["sign", "unlock"])
        #expect(AuditRecords.select(lines, cutoff: nil, actions: ["unlock"], limit: nil).map(\.entry.result) == ["ok", "wrong-code"])
        #expect(AuditRecords.select(lines, cutoff: nil, actions: [], limit: 1).map(\.line) == [lines[3]])
    }

    @Test("An entry as a line: labels and program names, or wide with URIs and paths; terminal controls from a client escaped")
    func text() {
        let entries = AuditRecords.select(lines, cutoff: nil, actions: [], limit: nil).map(\.entry)
        #expect(AuditRecords.text(entries[0], wide: false)
                == "2026-11-22 10:00:00.000 UTC  unlock                  ok  token=Work Card  by pid 42 thunderbird uid 1000  12.3 ms")
        #expect(AuditRecords.text(entries[1], wide: false)
                == "2026-11-22 11:00:00.000 UTC  sign                    ok  token=Work  key=mail  by pid 43 python3 tool.py uid 1000")
        #expect(AuditRecords.text(entries[1], wide: true).contains("key=pkcs11:token=Work;object=mail;id=%01  by pid 43 /usr/bin/python3 /home/a/bin/tool.py uid 1000"))
        let hostile = AuditRecords.text(entries[2], wide: false)
        #expect(!hostile.contains("\u{1B}"), "\(hostile)")
        #expect(hostile.hasSuffix("key=id:0a0b  by pid 44 x uid ?  deny by rule 2  (3 tries left)"), "\(hostile)")
        #expect(AuditRecords.recentErrors(lines) == [AuditRecords.text(entries[2], wide: true)])
    }

    @Test("--since: 30m, 2h, 7d, 45s go back that far from now; an ISO time is taken as it is; anything else is refused")
    func since() throws {
        let now = AuditRecords.timestamp(Double(Int(Date.now.timeIntervalSince1970)))
        let hourAgo = try #require(AuditRecords.cutoff(since: "1h"))
        #expect(hourAgo < now && hourAgo.count == now.count)
        #expect(AuditRecords.cutoff(since: "2026-11-22 10:00") == "2026-11-22T10:00")
        #expect(AuditRecords.cutoff(since: "yesterday") == nil)
        #expect(AuditRecords.cutoff(since: "-1h") == nil)
    }

    @Test("The configuration in the bundle: values of keys naming a code, PIN, password or secret are blanked; comments and other lines stay")
    func redacted() {
        let text = "pkcs11-module = /usr/lib/x.so\ndirectory-password = hunter2\n# pin = kept in a comment\nso-pin=1234\ntoken-key = abc\nlabel = code-free"
        #expect(SupportBundle.redacted(text)
                == "pkcs11-module = /usr/lib/x.so\ndirectory-password = [removed]\n# pin = kept in a comment\nso-pin= [removed]\ntoken-key = [removed]\nlabel = code-free")
    }
}
