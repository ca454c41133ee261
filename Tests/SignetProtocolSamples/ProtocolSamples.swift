import SignetAgentProtocol
import SignetCore

/// One of every agent request and response, with fields that are not all empty: the protocol's test
/// vectors, shared by its tests (`Tests/SignetAgentProtocolTests`) and the protocol fuzz target's seeds
/// (`Fuzz/Sources/FuzzAgentProtocol`), so that a new kind added here reaches both.
public enum ProtocolSamples {
    static func secret(_ text: String) -> SharedSecret { SharedSecret(SecretBytes(copying: Array(text.utf8))) }

    /// One of every request, with fields that are not all empty.
    public static let everyRequest: [AgentRequest] = [
        .hello(minVersion: 1, maxVersion: 1, client: "signet 0.1.0"),
        .status,
        .listTokens,
        .getCertificate(object: "pkcs11:token=Alice;id=%01;type=cert"),
        .unlock(token: "pkcs11:serial=1234", code: secret("Pa55-word"), finalTry: true),
        .lock(token: nil),
        .sign(key: "pkcs11:id=%01;type=private", mechanism: WireMechanism(type: 0x0D, hash: 0x250, mgf: 2, saltLength: 32), data: Array(repeating: 7, count: 32)),
        .decrypt(key: "pkcs11:id=%01;type=private", mechanism: WireMechanism(type: 9, hash: 0x220, mgf: 1, label: [1, 2]), ciphertext: Array(0..<255)),
        .derive(key: "pkcs11:id=%02", kdf: 1, sharedData: [], peerPoint: [4] + Array(repeating: 9, count: 64)),
        .generateKeyPair(token: nil, keyType: .ec, bits: 256, curve: "p256", id: [1], label: "Mail key"),
        .storeCertificate(token: "pkcs11:token=A", der: [0x30, 0x03, 0x02, 0x01, 0x01], id: [1], label: "Mail"),
        .deleteObject(object: "pkcs11:id=%01;type=cert"),
        .importKey(token: nil, key: ImportedKey(keyType: .rsa, components: [(.modulus, secret("nn")), (.privateExponent, secret("dd"))]), id: [9], label: "Imported"),
        .changeCode(token: nil, old: secret("old-code"), new: secret("new-code"), finalTry: false),
        .unblock(token: nil, soCode: secret("so-code!"), newCode: secret("new-code"), finalTry: false),
        .initSoftwareToken(label: "Test", userCode: secret("123456"), soCode: secret("12345678")),
        .tokenDetails,
        .repairLedger(token: nil),
        .repairLedger(token: "pkcs11:serial=1234"),
        .listReaders,
        .versions,
        .listObjectPage(token: nil, start: 0, certificateValues: true),
        .listObjectPage(token: "pkcs11:token=Alice", start: 40, certificateValues: false),
        .clientEnvironment(entries: [("DISPLAY", ":0"), ("tty", "/dev/pts/3"), ("TERM", "xterm-256color")]),
        .clientEnvironment(entries: []),
        .unlockAsking(token: nil),
        .unlockAsking(token: "pkcs11:token=Alice"),
        .policy,
        .shutdown,
        .reload,
    ]

    /// One of every response, with fields that are not all empty.
    public static let everyResponse: [AgentResponse] = [
        .hello(version: 1, agentVersion: "0.2.0", pid: 4242),
        .status(AgentStatus(agentVersion: "0.2.0", pid: 1, uptimeSeconds: 99, connections: 3, tokens: [sampleToken])),
        .tokens([sampleToken, sampleToken]),
        // Every state of the card's own counter.
        .tokens(everyCardCounter.map { counter in
            var token = sampleToken
            token.cardCounter = counter
            return token
        }),
        .certificate(der: [0x30, 0x00]),
        .access(AccessOutcome(kind: .locked, triesLeft: 0, lockedSeconds: 900, message: "Token locked for 15 min")),
        .access(AccessOutcome(kind: .unlocked, message: "Unlocked.")),
        .access(AccessOutcome(kind: .nowhereToAsk, message: "No screen or terminal to ask for the access code — run `signet unlock`")),
        .access(AccessOutcome(kind: .cancelled, message: "Cancelled; no try was used.")),
        .access(AccessOutcome(kind: .timedOut, message: "Nobody answered")),
        .ok(message: "Locked."),
        .signature(Array(repeating: 1, count: 256)),
        .plaintext([1, 2, 3]),
        .derived([4, 5]),
        .keyPair(publicKey: "pkcs11:id=%01;type=public", privateKey: "pkcs11:id=%01;type=private", subjectPublicKeyInfo: [0x30]),
        .stored(object: "pkcs11:id=%01;type=cert"),
        .notice(.presentToken, message: "Present your token"),
        .error(.notUnlocked, message: "Unlock the token first: signet unlock"),
        .tokenDetails([sampleDetail], moduleFailures: [ModuleFailure(path: "/nonexistent/libmissing.so", reason: "the file could not be loaded")]),
        .tokenDetails([], moduleFailures: []),
        .readers([ReaderEntry(name: "Virtual PCD 00 00", cardPresent: true, state: ["present", "in use"], atr: [0x3B, 0x88], transport: "virtual"),
                  ReaderEntry(name: "NFC", cardPresent: false, state: ["empty"], atr: nil, transport: "nfc")]),
        .versions(AgentVersions(agentVersion: "0.2.0", libraries: [.init(name: "p11-kit", version: "0.25.3 (/usr/lib/libp11-kit.so.0)")],
                                modules: [sampleModule], moduleFailures: [ModuleFailure(path: "/x.so", reason: "no")])),
        .objectPage(ObjectPage(objects: [samplePrivateKey, sampleObject], values: [[], [0x30, 0x00]], next: 2)),
        .objectPage(ObjectPage(objects: [], values: [], next: nil)),
        .policy(PolicyReport(
            files: [.init(path: "/etc/signet/clients", administrator: true, state: .absent),
                    .init(path: "/home/a/.config/signet/clients", administrator: false, state: .refused,
                          problems: ["/home/a/.config/signet/clients: writable by group or others (mode 0666)"])],
            rules: [.init(file: "/etc/signet/clients", line: 3, action: "confirm", program: "/usr/bin/python3.11", script: "/home/a/sign.py",
                          key: "label:Mail", operations: ["sign"]),
                    .init(file: "/etc/signet/clients", line: 4, action: "deny", program: "*", script: nil, key: "*", operations: ["sign", "decrypt", "derive"])],
            recent: [.init(program: "/usr/bin/signet", pid: 4242, key: "Mail", operation: "sign", verdict: .allowed,
                           time: "2026-11-22T10:15:30.123Z", count: 3),
                     .init(program: "/usr/bin/python3.11", pid: 7, key: "Mail", operation: "sign", verdict: .promptCancelled,
                           time: "2026-11-22T10:16:00.000Z", count: 1)])),
        .policy(PolicyReport(files: [], rules: [], recent: [])),
        .reloaded(ReloadReport(settings: [.init(name: "idle-lock-minutes", value: "15"), .init(name: "pinentry-program", value: "/usr/bin/pinentry-tty")],
                               clientRules: 2, refusals: ["/home/a/.config/signet/config: writable by group or others (mode 0666)"],
                               problems: ["/home/a/.config/signet/config: writable by group or others (mode 0666); nothing in the file is obeyed"])),
        .reloaded(ReloadReport(settings: [], clientRules: 0, refusals: [], problems: [])),
    ]

    static let sampleObject = ObjectEntry(uri: "pkcs11:id=%01;type=cert", kind: .certificate, label: "c", id: [1], keyType: nil, bits: 0, usages: [],
                                           subject: [0x30, 0])

    static let samplePrivateKey = ObjectEntry(uri: "pkcs11:id=%01;type=private", kind: .privateKey, label: "k", id: [1], keyType: .rsa, bits: 2048,
                                              usages: [.sign, .decrypt], publicKeyInfo: [0x30, 0])

    static let sampleModule = ModuleEntry(name: "softhsm2", path: "/usr/lib/softhsm/libsofthsm2.so", description: "Implementation of PKCS11",
                                           libraryVersion: "2.6", manufacturer: "SoftHSM", cryptokiVersion: "2.40")

    static let sampleDetail = TokenDetail(
        entry: sampleToken, slot: "SoftHSM slot ID 0x1", module: sampleModule, flags: ["CKF_RNG", "CKF_LOGIN_REQUIRED"],
        userCode: CodeFlags(countLow: true, finalTry: false, locked: false, toBeChanged: false, protectedAuthenticationPath: false, minLength: 4, maxLength: 255),
        soCode: CodeFlags(countLow: false, finalTry: true, locked: true, toBeChanged: true, protectedAuthenticationPath: true, minLength: nil, maxLength: nil))

    /// A token entry with every field set.
    public static let sampleToken = TokenEntry(uri: "pkcs11:token=Alice", label: "Alice", manufacturer: "SoftHSM project", model: "SoftHSM v2",
                                         serial: "abc", software: true, unlocked: false, failures: 1, triesLeft: 2, lockedSeconds: nil,
                                         tokenCounter: "3 tries left", ledgerDamage: nil, changes: 7, cardCounter: .ok(triesLeft: 3))

    /// One of every `CardCounter`.
    public static let everyCardCounter: [CardCounter] = [.notReported, .ok(triesLeft: nil), .ok(triesLeft: 3), .countLow, .finalTry, .blocked]
}
