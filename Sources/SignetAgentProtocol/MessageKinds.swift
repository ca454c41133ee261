/// The protocol's one description: every message's kind byte, name, field layout and (for a request)
/// the responses it may get. Encoding and decoding switch over these kinds exhaustively, the tests walk
/// every sample frame by `layout`, and a test checks `docs/protocol.md`'s message list against it.
///
/// A layout is written as p11-kit's `rpc-message.h` writes its signatures:
///
/// | letter | on the wire |
/// |---|---|
/// | `y` | a byte |
/// | `b` | a boolean: one byte, 0 or 1 |
/// | `n` | a 16-bit unsigned integer, big-endian |
/// | `u` | a 32-bit unsigned integer, big-endian |
/// | `t` | a 64-bit unsigned integer, big-endian |
/// | `s` | text: a `u` length, then that many bytes of UTF-8 |
/// | `x` | an access code: a `u` length, then its bytes (held in a zeroing buffer) |
/// | `m` | the 12 bytes of the `signet-agent` magic |
/// | `?X` | an optional `X`: a byte 0 (absent) or 1 followed by `X` |
/// | `aX` | an array: a `u` count, then that many `X` (`ay` is a byte string) |
/// | `(…)` | a group of fields, for an array's element |
/// | `{name}` | a structure from `WireLayout.structures` |
public enum WireLayout {
    /// The structures messages share, by the name a layout uses in braces.
    public static let structures: [String: String] = [
        "mechanism": "tttuay",
        "card-counter": "y?u",
        "token": "sssssbbuu?us?su{card-counter}",
        "object": "sysay?yunayay",
        "object-page": "a{object}aay?u",
        "access": "y?u?us",
        "status": "sutua{token}as",
        "module": "ssssss",
        "module-failure": "ss",
        "code-flags": "bbbbb?u?u",
        "token-detail": "{token}s{module}as{code-flags}{code-flags}",
        "reader": "sbas?ays",
        "versions": "sa(ss)a{module}a{module-failure}",
        "policy": "a(sbyas)a(suss?ssas)a(sussysu)",
        "reload": "a(ss)uasas",
    ]

    /// Walks `reader` over one value of `layout`, checking each field as the decoder does.
    /// - Throws: `WireError` when the bytes do not hold one value of that layout (truncated, a bad
    ///   boolean or optional marker, text that is not UTF-8), or when the layout itself is not well formed
    ///   (`.malformed`, naming the layout).
    public static func walk(_ layout: String, _ reader: inout WireReader) throws(WireError) {
        let letters = Array(layout)
        var index = 0
        while index < letters.count {
            try walkOne(letters, &index, &reader)
        }
    }

    private static func walkOne(_ letters: [Character], _ index: inout Int, _ r: inout WireReader) throws(WireError) {
        guard index < letters.count else { throw WireError("the layout \(String(letters)) ends inside a field") }
        let letter = letters[index]
        index += 1
        switch letter {
        case "y": _ = try r.u8()
        case "b": _ = try r.bool()
        case "n": _ = try r.u16()
        case "u": _ = try r.u32()
        case "t": _ = try r.u64()
        case "s": _ = try r.string()
        case "x": _ = try r.secret()
        case "m":
            for expected in AgentProtocol.magic where try r.u8() != expected {
                throw WireError("the hello does not start with the signet-agent magic")
            }
        case "?":
            let start = index
            _ = try r.optional { (r: inout WireReader) throws(WireError) in try walkOne(letters, &index, &r) }
            if index == start { try skip(letters, &index) }  // absent: step over the layout of what was not sent
        case "a":
            let start = index
            _ = try r.array { (r: inout WireReader) throws(WireError) in
                index = start
                try walkOne(letters, &index, &r)
            }
            index = start
            try skip(letters, &index)
        case "(":
            while index < letters.count, letters[index] != ")" { try walkOne(letters, &index, &r) }
            guard index < letters.count else { throw WireError("the layout \(String(letters)) has an unclosed (") }
            index += 1
        case "{":
            guard let close = letters[index...].firstIndex(of: "}") else { throw WireError("the layout \(String(letters)) has an unclosed {") }
            let name = String(letters[index..<close])
            guard let structure = structures[name] else { throw WireError("the layout names no structure \(name)") }
            index = close + 1
            try walk(structure, &r)
        default:
            throw WireError("the layout \(String(letters)) has an unknown letter \(letter)")
        }
    }

    /// Steps over one field's layout without reading bytes.
    private static func skip(_ letters: [Character], _ index: inout Int) throws(WireError) {
        guard index < letters.count else { throw WireError("the layout \(String(letters)) ends inside a field") }
        let letter = letters[index]
        index += 1
        switch letter {
        case "?", "a": try skip(letters, &index)
        case "(":
            while index < letters.count, letters[index] != ")" { try skip(letters, &index) }
            index += 1
        case "{":
            guard let close = letters[index...].firstIndex(of: "}") else { throw WireError("the layout \(String(letters)) has an unclosed {") }
            index = close + 1
        default: break
        }
    }
}

extension AgentRequest {
    /// A request's kind: its byte on the wire, its name, its layout and the responses it may get.
    public enum Kind: UInt8, Sendable, CaseIterable {
        case hello = 0x01, status, listTokens
        // 0x04 was listObjects (one frame, which failed past about 220 certificates): listObjectPage replaced it.
        case getCertificate = 0x05, unlock, lock, sign, decrypt, derive
        case generateKeyPair = 0x10, storeCertificate, deleteObject, importKey, changeCode, unblock, initSoftwareToken
        case tokenDetails, repairLedger, listReaders, versions, listObjectPage, clientEnvironment, unlockAsking, policy, shutdown
        case reload

        /// A short name for logs and `docs/protocol.md` (never the fields).
        public var name: String { Self.table[self]!.name }
        /// The fields after the header, as `WireLayout` writes them.
        public var layout: String { Self.table[self]!.layout }
        /// The final responses this request may get besides `error`, which every request may get, and
        /// the interim `notice`, which only a request that waits for a token (`mayWait`) gets first.
        public var answers: [AgentResponse.Kind] { Self.table[self]!.answers }
        /// True when the request may wait for an absent token, sending `notice` first.
        public var mayWait: Bool { Self.table[self]!.waits }

        /// True when `response` may answer this request.
        public func mayBeAnswered(by response: AgentResponse.Kind) -> Bool {
            response == .error || (response == .notice && mayWait) || answers.contains(response)
        }

        /// The table. A new kind without a row here makes every test that walks the table fail.
        static let table: [Kind: (name: String, layout: String, answers: [AgentResponse.Kind], waits: Bool)] = [
            .hello: ("hello", "mnns", [.hello], false),
            .status: ("status", "", [.status], false),
            .listTokens: ("list-tokens", "", [.tokens], false),
            .getCertificate: ("get-certificate", "s", [.certificate], false),
            .unlock: ("unlock", "?sxb", [.access], true),
            .lock: ("lock", "?s", [.ok], false),
            .sign: ("sign", "s{mechanism}ay", [.signature], true),
            .decrypt: ("decrypt", "s{mechanism}ay", [.plaintext], true),
            .derive: ("derive", "stayay", [.derived], true),
            .generateKeyPair: ("generate-key-pair", "?syusays", [.keyPair], false),
            .storeCertificate: ("store-certificate", "?sayays", [.stored], false),
            .deleteObject: ("delete-object", "s", [.ok], false),
            .importKey: ("import-key", "?sya(yx)ays", [.stored], false),
            .changeCode: ("change-code", "?sxxb", [.access], false),
            .unblock: ("unblock", "?sxxb", [.access], false),
            .initSoftwareToken: ("init-software-token", "sxx", [.stored], false),
            .tokenDetails: ("token-details", "", [.tokenDetails], false),
            .repairLedger: ("repair-ledger", "?s", [.ok], false),
            .listReaders: ("list-readers", "", [.readers], false),
            .versions: ("versions", "", [.versions], false),
            .listObjectPage: ("list-object-page", "?sub", [.objectPage], false),
            .clientEnvironment: ("client-environment", "a(ss)", [.ok], false),
            .unlockAsking: ("unlock-asking", "?s", [.access], true),
            .policy: ("policy", "", [.policy], false),
            .shutdown: ("shutdown", "", [.ok], false),
            .reload: ("reload", "", [.reloaded], false),
        ]
    }
}

extension AgentResponse {
    /// A response's kind: its byte on the wire, its name and its layout.
    public enum Kind: UInt8, Sendable, CaseIterable {
        case hello = 0x81, status, tokens
        // 0x84 was objects, the answer to listObjects.
        case certificate = 0x85, access, ok, signature, plaintext, derived, keyPair, stored
        case tokenDetails, notice, readers, versions, objectPage, policy, reloaded
        case error = 0xFF

        /// A short name for `docs/protocol.md`.
        public var name: String { Self.table[self]!.name }
        /// The fields after the header, as `WireLayout` writes them.
        public var layout: String { Self.table[self]!.layout }

        static let table: [Kind: (name: String, layout: String)] = [
            .hello: ("hello", "nsu"),
            .status: ("status", "{status}"),
            .tokens: ("tokens", "a{token}"),
            .certificate: ("certificate", "ay"),
            .access: ("access", "{access}"),
            .ok: ("ok", "s"),
            .signature: ("signature", "ay"),
            .plaintext: ("plaintext", "ay"),
            .derived: ("derived", "ay"),
            .keyPair: ("key-pair", "ssay"),
            .stored: ("stored", "s"),
            .tokenDetails: ("token-details", "a{token-detail}a{module-failure}"),
            .notice: ("notice", "ys"),
            .readers: ("readers", "a{reader}"),
            .versions: ("versions", "{versions}"),
            .objectPage: ("object-page", "{object-page}"),
            .policy: ("policy", "{policy}"),
            .reloaded: ("reloaded", "{reload}"),
            .error: ("error", "ns"),
        ]
    }
}
