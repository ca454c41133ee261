import Foundation
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetPKCS11
import SignetTestSupport
import Testing

/// What the test believes about one agent and its one token; every answer the
/// agent gives is checked against it, and it is updated only by what a step did.
struct TokenModel {
    struct Key {
        var type: WireKeyType
        var publicPEM: String
        /// The private key's URI, as the agent gave it.
        var uri: String
        /// CKA_ID: one byte for generated keys, the 20-byte key identifier for imported ones.
        var pkcs11ID: [UInt8]
        var hasCertificate = false
        /// Whether that certificate is the one in the key's PKCS#12 file (not one `cert import` stored).
        var certificateFromFile = false
    }

    var present = true
    var unlocked = false
    /// Wrong codes in a row (Signet's count).
    var failures = 0
    /// Signet's own lock after three wrong codes (15 minutes: ended here only by `pin unblock`).
    var locked = false
    var keys: [UInt8: Key] = [:]
    /// Which of the prepared PKCS#12 files are on the token (index → key id).
    var imported: [Int: UInt8] = [:]

    var triesLeft: Int { locked ? 0 : 3 - failures }

    /// The error a private-key operation must give, or nil when it must work.
    /// - Parameter waits: the request asks for an absent token (sign, decrypt, derive) rather than failing at once.
    func refusal(key id: UInt8?, waits: Bool) -> AgentErrorCode? {
        if !present { return waits ? .tokenAbsent : .noToken }
        if !unlocked { return .notUnlocked }
        if let id, keys[id] == nil { return .objectNotFound }
        return nil
    }
}

/// Seeded random journeys through the agent's states: unlock (right and wrong
/// codes), lock, idle lock, sign, decrypt, derive, key generation, certificate
/// import and deletion, PKCS#12 import, agent restarts, and the token pulled and
/// returned, each answer checked against `TokenModel` and against OpenSSL.
///
/// The token is SoftHSM2 through the test wrapper module. SoftHSM2 cannot be
/// pulled (it never reports a token gone), so the wrapper stands in for the
/// pull: with its `absent` flag the token leaves the slot list and its sessions
/// are closed, as a reader does when a card is removed. Real card pulls through
/// pcscd and vpcd are tested in `CardAgentTests`.
///
/// `SIGNET_STATE_SEED` replays a seed; `SIGNET_STATE_STEPS` runs that many steps
/// with no time bound (the default is 400 steps or about 30 s, whichever ends first).
@Suite("Agent state machine", .serialized)
final class StateMachineTests {
    static let code = "state-1234"
    static let wrongCode = "wrong-9999"
    static let soCode = "state-so-5678"

    let agent: AgentFixture
    let peer: OpenSSLPeer
    let flags: String
    var client: AgentClient
    var token = ""
    var model = TokenModel()
    var trace: [String] = []
    var nextID: UInt8 = 10
    var p12Files: [(path: String, spki: String)] = []
    var random: SplitMix

    init() throws {
        let home = try TestPaths.temporaryDirectory("signet-state-flags")
        flags = home.path
        agent = try AgentFixture(config: "presence-wait-seconds = 0.3\nidle-lock-minutes = 15\n", countingCodes: true,
                                 extraEnvironment: ["SIGNET_WRAPPER_FLAGS_DIR": flags])
        try agent.start()
        peer = try OpenSSLPeer()
        client = try agent.client()
        let seed = ProcessInfo.processInfo.environment["SIGNET_STATE_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64.max)
        random = SplitMix(seed: seed)
        print("state machine: seed \(seed) (replay with SIGNET_STATE_SEED=\(seed))")
        trace.append("seed \(seed)")
    }

    deinit { agent.stop() }

    // MARK: Set-up

    func prepare() throws {
        token = try agent.makeToken("State", code: Self.code, soCode: Self.soCode)
        let ca = (key: peer.path("ca.key"), certificate: peer.path("ca.pem"))
        try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca.key, "-out", ca.certificate,
                                    "-subj", "/C=CA/O=State Test CA/CN=Root", "-days", "30"])
        try Run.checked("openssl", ["x509", "-in", ca.certificate, "-outform", "DER", "-out", peer.path("ca.der")])
        _ = try peer.file("mail.ext", text: "keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement\nextendedKeyUsage=emailProtection\nsubjectAltName=email:state@example.org\n")
        // Two PKCS#12 files (RSA keys made by OpenSSL), each imported at most once at a time.
        for index in 0..<2 {
            let key = peer.path("p12-\(index).key"), cert = peer.path("p12-\(index).pem")
            try Run.checked("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "30",
                                        "-subj", "/C=CA/O=State Test/CN=P12 Person \(index)",
                                        "-addext", "keyUsage=critical,digitalSignature,keyEncipherment", "-addext", "extendedKeyUsage=emailProtection"])
            try Run.checked("openssl", ["pkcs12", "-export", "-inkey", key, "-in", cert, "-out", peer.path("p12-\(index).p12"), "-passout", "pass:p12pass"])
            let spki = try Run.checked("openssl", ["pkey", "-in", key, "-pubout"]).output
            p12Files.append((peer.path("p12-\(index).p12"), spki))
        }
        // Start unlocked with one RSA and one EC key, as after enrolment.
        try step("unlock (right code)") { try unlockStep(right: true) }
        try step("generate rsa") { try generateStep(.rsa) }
        try step("generate ec") { try generateStep(.ec) }
    }

    // MARK: The run

    @Test("Random sequences of operations agree with the model at every step (seed printed; SIGNET_STATE_STEPS for longer runs)")
    func randomJourneys() async throws {
        let test = UncheckedSendable(self)
        let done = try await offPool { try test.value.runJourneys() }
        #expect(done >= 40, "only \(done) steps ran in the time bound")
    }

    /// Runs the steps; returns how many ran.
    func runJourneys() throws -> Int {
        try prepare()
        let environment = ProcessInfo.processInfo.environment
        let requested = environment["SIGNET_STATE_STEPS"].flatMap { Int($0) }
        let steps = requested ?? 400
        let deadline = requested == nil ? Date().addingTimeInterval(30) : Date.distantFuture
        var done = 0
        while done < steps && Date() < deadline {
            let (name, action) = pick()
            try step(name, action)
            done += 1
        }
        print("state machine: \(done) steps; \(trace.count - 1) recorded")
        return done
    }

    /// One step: runs it, then compares the agent's token status with the model.
    func step(_ name: String, _ action: () throws -> Void) throws {
        trace.append(name)
        do {
            try action()
            try checkStatus()
        } catch {
            throw TestFailure("step \(trace.count - 1) \"\(name)\" failed: \(error)\nsequence:\n  \(trace.joined(separator: "\n  "))\nagent log (end):\n\(agent.agentLog.suffix(3000))")
        }
    }

    func pick() -> (String, () throws -> Void) {
        let keyIDs = model.keys.keys.sorted()
        func anyKey(_ type: WireKeyType?) -> UInt8 {
            let matching = keyIDs.filter { type == nil || model.keys[$0]?.type == type }
            // Now and then a key that is not there (deleted, or never made).
            if matching.isEmpty || Int.random(in: 0..<12, using: &random) == 0 { return UInt8.random(in: 200...210, using: &random) }
            return matching.randomElement(using: &random)!
        }
        let choices: [(Int, () -> (String, () throws -> Void))] = [
            (10, { ("unlock (right code)", { try self.unlockStep(right: true) }) }),
            (5, { ("unlock (wrong code)", { try self.unlockStep(right: false) }) }),
            (7, { ("lock", { try self.lockStep() }) }),
            (2, { ("idle lock", { try self.idleStep() }) }),
            (14, { let id = anyKey(.rsa); return ("sign rsa \(id)", { try self.signStep(id) }) }),
            (10, { let id = anyKey(.ec); return ("sign ec \(id)", { try self.signStep(id) }) }),
            (8, { let id = anyKey(.rsa); return ("decrypt \(id)", { try self.decryptStep(id) }) }),
            (6, { let id = anyKey(.ec); return ("derive \(id)", { try self.deriveStep(id) }) }),
            (3, { ("generate ec", { try self.generateStep(.ec) }) }),
            (1, { ("generate rsa", { try self.generateStep(.rsa) }) }),
            (4, { let id = anyKey(nil); return ("cert import \(id)", { try self.certificateImportStep(id) }) }),
            (3, { let id = anyKey(nil); return ("cert delete \(id)", { try self.certificateDeleteStep(id) }) }),
            (2, { let id = anyKey(nil); return ("key delete \(id)", { try self.keyDeleteStep(id) }) }),
            (3, { let index = Int.random(in: 0..<self.p12Files.count, using: &self.random); return ("pkcs12 import \(index)", { try self.p12Step(index) }) }),
            (2, { ("agent restart", { try self.restartStep() }) }),
            (2, { ("token pulled", { try self.presenceStep(present: false) }) }),
            (4, { ("token returned", { try self.presenceStep(present: true) }) }),
            (2, { ("pin unblock", { try self.unblockStep() }) }),
        ]
        var roll = Int.random(in: 0..<choices.reduce(0) { $0 + $1.0 }, using: &random)
        for (weight, make) in choices {
            if roll < weight { return make() }
            roll -= weight
        }
        return choices[0].1()
    }

    // MARK: Checks

    /// The agent's view must be the model's: listed when present, unlocked as the model says, same tries left.
    func checkStatus() throws {
        guard case .tokens(let tokens) = try client.call(.listTokens) else { throw TestFailure("list-tokens gave no tokens") }
        guard model.present else {
            if !tokens.isEmpty { throw TestFailure("the pulled token is still listed: \(tokens.map(\.label))") }
            return
        }
        guard let entry = tokens.first else { throw TestFailure("the token is not listed") }
        if entry.unlocked != model.unlocked { throw TestFailure("agent says unlocked=\(entry.unlocked), model \(model.unlocked)") }
        if Int(entry.triesLeft) != model.triesLeft { throw TestFailure("agent says \(entry.triesLeft) tries left, model \(model.triesLeft)") }
        if (entry.lockedSeconds != nil) != model.locked { throw TestFailure("agent lock \(String(describing: entry.lockedSeconds)), model locked=\(model.locked)") }
    }

    /// Calls the agent and requires an error `expected`, or success when `expected` is nil.
    func call(_ request: AgentRequest, expect expected: AgentErrorCode?) throws -> AgentResponse? {
        do {
            let response = try client.call(request, timeout: 60)
            if let expected { throw TestFailure("expected \(expected), got \(response)") }
            return response
        } catch let error as AgentClientError {
            guard let expected else { throw TestFailure("expected success, got \(error.code.map { "\($0)" } ?? "no code"): \(error.description)") }
            if error.code != expected { throw TestFailure("expected \(expected), got \(error.code.map { "\($0)" } ?? "no code"): \(error.description)") }
            if error.description.contains("CKR_") { throw TestFailure("a PKCS#11 return code reached the user: \(error.description)") }
            return nil
        }
    }

    func secret(_ text: String) -> SharedSecret { SharedSecret(SecretBytes(copying: Array(text.utf8))) }

    /// The URI of key `id`'s object of `type` (by CKA_ID; for a key the model does not know, that one-byte id).
    func objectURI(_ id: UInt8, type: String) -> String {
        let bytes = model.keys[id]?.pkcs11ID ?? [id]
        return token + ";id=" + bytes.map { String(format: "%%%02X", $0) }.joined() + ";type=" + type
    }

    // MARK: Steps

    func unlockStep(right: Bool) throws {
        let request = AgentRequest.unlock(token: token, code: secret(right ? Self.code : Self.wrongCode), finalTry: false)
        guard model.present else { _ = try call(request, expect: .tokenAbsent); return }
        guard case .access(let outcome) = try call(request, expect: nil) else { throw TestFailure("unlock gave no access outcome") }
        let expected: AccessOutcome.Kind
        if model.locked {
            expected = .locked
        } else if model.unlocked {
            expected = .alreadyUnlocked
        } else if right {
            expected = .unlocked
            model.unlocked = true
            model.failures = 0
        } else {
            model.failures += 1
            if model.failures >= 3 { model.locked = true }
            expected = model.locked ? .locked : .wrongCode
        }
        if outcome.kind != expected { throw TestFailure("unlock answered \(outcome.kind) (\(outcome.message)), model \(expected)") }
        if expected == .wrongCode && outcome.triesLeft.map(Int.init) != model.triesLeft {
            throw TestFailure("wrong code: \(outcome.triesLeft.map { "\($0)" } ?? "no") tries left, model \(model.triesLeft)")
        }
    }

    func lockStep() throws {
        guard case .ok = try call(.lock(token: nil), expect: nil) else { throw TestFailure("lock did not answer ok") }
        model.unlocked = false
    }

    /// The agent's own idle lock: a tiny idle time, in force once the `reload` request answers; then, when the token
    /// was unlocked, a wait until housekeeping has locked it; then back to 15 minutes, again in force once answered.
    /// (Housekeeping runs on the agent's real clock in its own process, so this polls for its effect.)
    func idleStep() throws {
        let config = agent.paths.config + "/config"
        let original = try String(contentsOfFile: config, encoding: .utf8)
        try (original + "idle-lock-minutes = 0.001\n").write(toFile: config, atomically: true, encoding: .utf8)
        try agent.reload()
        defer {
            try? original.write(toFile: config, atomically: true, encoding: .utf8)
            _ = try? agent.reload()
        }
        if model.unlocked && model.present {
            let locked = try eventually(timeout: .seconds(10)) {
                if case .tokens(let tokens) = try client.call(.listTokens) { tokens.first?.unlocked == false } else { false }
            }
            guard locked else { throw TestFailure("the agent did not lock the idle token within 10 s") }
        }
        model.unlocked = false
    }

    func signStep(_ id: UInt8) throws {
        let key = model.keys[id]
        let uri = key?.uri ?? objectURI(id, type: "private")
        let message = Array("state step \(trace.count)".utf8)
        let mechanism: WireMechanism
        var data = message
        if key?.type == .ec {
            mechanism = WireMechanism(type: CKM.ecdsa)
            data = try sha256(message, peer)
        } else {
            mechanism = WireMechanism(type: CKM.sha256RSAPKCS)
        }
        let response = try call(.sign(key: uri, mechanism: mechanism, data: data), expect: model.refusal(key: id, waits: true))
        guard let response, let key else { return }
        guard case .signature(var signature) = response else { throw TestFailure("sign answered \(response)") }
        if key.type == .ec { signature = ECDSASignature.der(fromRaw: signature) }
        if !(try peer.verify(publicKeyPEM: key.publicPEM, message: message, signature: signature)) {
            throw TestFailure("OpenSSL does not verify the \(key.type) signature of key \(id)")
        }
    }

    func decryptStep(_ id: UInt8) throws {
        let key = model.keys[id]
        let uri = key?.uri ?? objectURI(id, type: "private")
        let plaintext = "content key \(trace.count)"
        var ciphertext: [UInt8] = Array(repeating: 1, count: 256)
        if let key {
            let publicKey = try peer.file("dec-\(id).pem", text: key.publicPEM)
            let input = try peer.file("dec-in", Array(plaintext.utf8))
            try Run.checked("openssl", ["pkeyutl", "-encrypt", "-pubin", "-inkey", publicKey, "-in", input, "-out", peer.path("dec.bin")])
            ciphertext = try peer.read("dec.bin")
        }
        let response = try call(.decrypt(key: uri, mechanism: WireMechanism(type: CKM.rsaPKCS), ciphertext: ciphertext), expect: model.refusal(key: id, waits: true))
        guard let response, key != nil else { return }
        guard case .plaintext(let recovered) = response, recovered == Array(plaintext.utf8) else { throw TestFailure("decrypt answered \(response)") }
    }

    func deriveStep(_ id: UInt8) throws {
        let key = model.keys[id]
        let uri = key?.uri ?? objectURI(id, type: "private")
        if !FileManager.default.fileExists(atPath: peer.path("peer.pem")) {
            try Run.checked("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", peer.path("peer.pem")])
            try Run.checked("openssl", ["pkey", "-in", peer.path("peer.pem"), "-pubout", "-outform", "DER", "-out", peer.path("peer.der")])
        }
        let peerPoint = Array(try peer.read("peer.der").suffix(65))
        let response = try call(.derive(key: uri, kdf: 1, sharedData: [], peerPoint: peerPoint), expect: model.refusal(key: id, waits: true))
        guard let response, let key else { return }
        guard case .derived(let derived) = response else { throw TestFailure("derive answered \(response)") }
        let tokenKey = try peer.file("derive-\(id).pem", text: key.publicPEM)
        try Run.checked("openssl", ["pkeyutl", "-derive", "-inkey", peer.path("peer.pem"), "-peerkey", tokenKey, "-out", peer.path("shared.bin")])
        if derived != (try peer.read("shared.bin")) { throw TestFailure("ECDH secret of key \(id) differs from OpenSSL's") }
    }

    func generateStep(_ type: WireKeyType) throws {
        let id = nextID
        nextID += 1
        let request = AgentRequest.generateKeyPair(token: token, keyType: type, bits: type == .rsa ? 2048 : 0, curve: type == .ec ? "P-256" : "",
                                                   id: [id], label: "key\(id)")
        guard let response = try call(request, expect: model.refusal(key: nil, waits: false)) else { return }
        guard case .keyPair(_, let privateKey, let spki) = response else { throw TestFailure("generate answered \(response)") }
        model.keys[id] = TokenModel.Key(type: type, publicPEM: PEM.encode(spki, label: "PUBLIC KEY"), uri: privateKey, pkcs11ID: [id])
    }

    /// `signet csr` and `signet cert import` for a key, with a certificate from the test CA.
    func certificateImportStep(_ id: UInt8) throws {
        guard model.present, model.unlocked, let key = model.keys[id], !key.hasCertificate else {
            // Nothing to certify; when the token is not usable, storing a certificate must be refused.
            guard let expected = model.refusal(key: nil, waits: false) else { return }
            _ = try call(.storeCertificate(token: token, der: try peer.read("ca.der"), id: [id], label: "refused"), expect: expected)
            return
        }
        let csr = peer.path("k\(id).csr"), issued = peer.path("k\(id).pem")
        try cli(["csr", "--key", key.uri, "--subject", "C=CA,O=State Test,CN=Key \(id)", "--email", "state@example.org", "-o", csr])
        try Run.checked("openssl", ["x509", "-req", "-in", csr, "-CA", peer.path("ca.pem"), "-CAkey", peer.path("ca.key"), "-CAcreateserial",
                                    "-days", "10", "-extfile", peer.path("mail.ext"), "-out", issued])
        try cli(["cert", "import", issued])
        guard case .objectPage(let page) = try client.call(.listObjectPage(token: token, start: 0, certificateValues: false)), case let objects = page.objects,
              objects.contains(where: { $0.kind == .certificate && $0.id == key.pkcs11ID })
        else { throw TestFailure("the certificate of key \(id) is not listed with its key's id") }
        model.keys[id]?.hasCertificate = true
        model.keys[id]?.certificateFromFile = false
    }

    func certificateDeleteStep(_ id: UInt8) throws {
        let uri = objectURI(id, type: "cert")
        var expected = model.refusal(key: nil, waits: false)
        if expected == nil && model.keys[id]?.hasCertificate != true { expected = .objectNotFound }
        guard try call(.deleteObject(object: uri), expect: expected) != nil else { return }
        model.keys[id]?.hasCertificate = false
    }

    /// Deletes a key pair (and its certificate): a later request naming it must not reach a stale handle.
    func keyDeleteStep(_ id: UInt8) throws {
        guard model.keys[id] != nil else {
            _ = try call(.deleteObject(object: objectURI(id, type: "private")), expect: model.refusal(key: nil, waits: false) ?? .objectNotFound)
            return
        }
        guard try call(.deleteObject(object: objectURI(id, type: "private")), expect: model.refusal(key: nil, waits: false)) != nil else { return }
        _ = try call(.deleteObject(object: objectURI(id, type: "public")), expect: nil)
        if model.keys[id]?.hasCertificate == true { _ = try call(.deleteObject(object: objectURI(id, type: "cert")), expect: nil) }
        model.keys[id] = nil
        for (index, keyID) in model.imported where keyID == id { model.imported[index] = nil }
    }

    /// `signet import FILE.p12`, unlocking with `--code-fd` when the token is locked.
    /// When the key is on the token with a certificate `cert import` stored, the file's certificate must not be
    /// stored next to it (two certificates with one id make `cert delete` ambiguous): without `--replace` nothing
    /// is written, with it the file's certificate replaces the other.
    func p12Step(_ index: Int) throws {
        let file = p12Files[index]
        let knownAlias = model.imported[index]
        let conflict = knownAlias.flatMap { model.keys[$0] }.map { $0.hasCertificate && !$0.certificateFromFile } ?? false
        let replace = conflict && Bool.random(using: &random)
        let result = try agent.signet(["import", file.path, "--password-fd", "0", "--code-fd", "0"] + (replace ? ["--replace"] : []),
                                      stdin: "p12pass\n\(Self.code)\n")
        if !model.present {
            if result.status == 0 { throw TestFailure("import succeeded with the token pulled") }
            return
        }
        if conflict && !replace {
            guard result.status == 1, result.errors.contains("--replace") else {
                throw TestFailure("import over another certificate of the key exited \(result.status), not 1 with a hint at --replace: \(result.errors)")
            }
            return
        }
        if model.locked {
            if result.status != 3 { throw TestFailure("import with the token locked by Signet exited \(result.status): \(result.errors)") }
            return
        }
        guard result.status == 0 else { throw TestFailure("import exited \(result.status): \(result.errors)\(result.output)") }
        model.unlocked = true
        model.failures = 0
        if let alias = knownAlias {
            // The key was there; a deleted (or, with --replace, another) certificate is stored again.
            model.keys[alias]?.hasCertificate = true
            model.keys[alias]?.certificateFromFile = true
            return
        }
        guard case .objectPage(let page) = try client.call(.listObjectPage(token: token, start: 0, certificateValues: false)), case let objects = page.objects,
              let entry = objects.first(where: { $0.kind == .privateKey && PEM.encode($0.publicKeyInfo, label: "PUBLIC KEY") == file.spki })
        else { throw TestFailure("the imported key is not listed") }
        if entry.id.isEmpty { throw TestFailure("the imported key has no id") }
        // The model knows keys by a one-byte alias; the agent by the key's own (20-byte) id.
        let alias = nextID
        nextID += 1
        model.keys[alias] = TokenModel.Key(type: .rsa, publicPEM: file.spki, uri: entry.uri, pkcs11ID: entry.id, hasCertificate: true,
                                            certificateFromFile: true)
        model.imported[index] = alias
    }

    func restartStep() throws {
        agent.stop()
        try agent.start()
        client = try agent.client()
        model.unlocked = false
    }

    /// Pulls or returns the token (the wrapper's `absent` flag), then waits until the agent has seen it.
    func presenceStep(present: Bool) throws {
        let flag = flags + "/absent"
        if present {
            try? FileManager.default.removeItem(atPath: flag)
        } else {
            _ = FileManager.default.createFile(atPath: flag, contents: Data())
        }
        if model.present != present {
            model.present = present
            model.unlocked = false
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline {
                if case .tokens(let tokens) = try client.call(.listTokens), tokens.isEmpty != present { return }
                usleep(100_000)
            }
            throw TestFailure("the agent did not see the token \(present ? "return" : "go") within 5 s")
        }
    }

    /// `signet pin unblock` with the administrator code: ends Signet's lock, sets the same code again.
    func unblockStep() throws {
        let request = AgentRequest.unblock(token: token, soCode: secret(Self.soCode), newCode: secret(Self.code), finalTry: false)
        guard model.present else { _ = try call(request, expect: .tokenAbsent); return }
        guard case .access(let outcome) = try call(request, expect: nil) else { throw TestFailure("unblock gave no access outcome") }
        if outcome.kind != .unlocked { throw TestFailure("unblock answered \(outcome.kind): \(outcome.message)") }
        model.locked = false
        model.failures = 0
        model.unlocked = false
    }

    @discardableResult
    func cli(_ arguments: [String], stdin: String? = nil) throws -> Run.Result {
        let result = try agent.signet(arguments, stdin: stdin)
        guard result.status == 0 else { throw TestFailure("signet \(arguments.joined(separator: " ")) exited \(result.status): \(result.errors)") }
        return result
    }
}

@Suite("Object handles across state changes", .serialized)
struct HandleLifetimeTests {
    /// Another process (pkcs11-tool) replaces the key behind the agent's back: the agent's cached
    /// handle is stale (CKR_OBJECT_HANDLE_INVALID in its process); it must look the key up once more
    /// and sign with the new key, and the user never sees the stale handle.
    @Test("A handle made stale behind the agent's back is looked up again, not shown to the user")
    func staleHandleIsLookedUpAgain() throws {
        let setup = try UnlockedToken("Stale")
        let peer = try OpenSSLPeer()
        let message = Array("before and after".utf8)
        guard case .signature = try setup.client.call(.sign(key: setup.rsa.privateKey, mechanism: WireMechanism(type: CKM.sha256RSAPKCS), data: message)) else {
            Issue.record("no first signature"); return
        }
        guard let module = SoftwareTokens.installedModulePath() else { throw TestFailure("SoftHSM2 is not installed") }
        let tool = { (arguments: [String]) throws -> Run.Result in
            let result = try Run.command("pkcs11-tool", ["--module", module, "--token-label", "Stale", "--login", "--pin", "123456"] + arguments,
                                         environment: setup.agent.environment)
            guard result.status == 0 else { throw TestFailure("pkcs11-tool \(arguments) exited \(result.status): \(result.errors)") }
            return result
        }
        _ = try tool(["--delete-object", "--type", "privkey", "--id", "01"])
        _ = try tool(["--delete-object", "--type", "pubkey", "--id", "01"])
        try Run.checked("openssl", ["genrsa", "-out", peer.path("new.pem"), "2048"])
        try Run.checked("openssl", ["rsa", "-in", peer.path("new.pem"), "-pubout", "-out", peer.path("new-pub.pem")])
        _ = try tool(["--write-object", peer.path("new.pem"), "--type", "privkey", "--id", "01", "--label", "rsa", "--usage-sign"])
        guard case .signature(let signature) = try setup.client.call(.sign(key: setup.rsa.privateKey, mechanism: WireMechanism(type: CKM.sha256RSAPKCS), data: message)) else {
            Issue.record("no second signature"); return
        }
        let newPublic = try String(contentsOfFile: peer.path("new-pub.pem"), encoding: .utf8)
        #expect(try peer.verify(publicKeyPEM: newPublic, message: message, signature: signature), "signed with the replaced key")
    }
}
