import SignetCore

/// The agent protocol: values, and their bytes. No sockets, no tokens.
///
/// A frame is a 4-byte big-endian length followed by that many bytes:
/// one byte of message kind, a 4-byte request id, then the message's fields.
/// See `docs/protocol.md` for every message and error.
public enum AgentProtocol {
    /// The protocol version this code speaks.
    public static let version: UInt16 = 1
    /// Largest frame body accepted, in bytes. Digests, wrapped keys and
    /// certificates travel; whole messages never do.
    public static let maximumFrame = 64 * 1024
    /// The magic a client's hello starts with.
    public static let magic: [UInt8] = Array("signet-agent".utf8)
    /// The lengths, in bytes, `initSoftwareToken` accepts for each code (SoftHSM2's limits;
    /// here so the command line can check a new code before asking for it twice).
    public static let softwareTokenCodeLengths: ClosedRange<Int> = 4...255
}

/// Stable error codes: clients may switch on these; they never change meaning.
public struct AgentErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    // The connection (the agent closes it after sending these).
    public static let malformedFrame = AgentErrorCode(rawValue: 1)
    public static let frameTooLarge = AgentErrorCode(rawValue: 2)
    public static let unsupportedVersion = AgentErrorCode(rawValue: 3)
    public static let handshakeRequired = AgentErrorCode(rawValue: 4)
    public static let unknownRequest = AgentErrorCode(rawValue: 5)
    public static let timeout = AgentErrorCode(rawValue: 6)
    public static let tooManyConnections = AgentErrorCode(rawValue: 7)
    public static let notPermitted = AgentErrorCode(rawValue: 8)
    public static let shuttingDown = AgentErrorCode(rawValue: 9)
    // Tokens.
    public static let noToken = AgentErrorCode(rawValue: 20)
    public static let tokenAmbiguous = AgentErrorCode(rawValue: 21)
    public static let tokenAbsent = AgentErrorCode(rawValue: 22)
    public static let tokenRemoved = AgentErrorCode(rawValue: 23)
    public static let notUnlocked = AgentErrorCode(rawValue: 24)
    // Objects and operations.
    public static let objectNotFound = AgentErrorCode(rawValue: 30)
    public static let objectAmbiguous = AgentErrorCode(rawValue: 31)
    public static let mechanismInvalid = AgentErrorCode(rawValue: 32)
    public static let dataInvalid = AgentErrorCode(rawValue: 33)
    public static let keyUsageNotPermitted = AgentErrorCode(rawValue: 34)
    public static let invalidArgument = AgentErrorCode(rawValue: 35)
    // Per-client policy (`docs/clients.md`).
    /// A rule in a `clients` file, or the person at the prompt, refused this program the key.
    public static let deniedByPolicy = AgentErrorCode(rawValue: 36)
    /// A rule asks to confirm each use, and no yes came: the prompt was cancelled, timed out, or could not be shown.
    public static let notConfirmed = AgentErrorCode(rawValue: 37)
    public static let tokenFailure = AgentErrorCode(rawValue: 40)
    public static let unsupported = AgentErrorCode(rawValue: 50)
    public static let internalError = AgentErrorCode(rawValue: 99)

    public var description: String {
        let names: [UInt16: String] = [
            1: "malformed-frame", 2: "frame-too-large", 3: "unsupported-version", 4: "handshake-required",
            5: "unknown-request", 6: "timeout", 7: "too-many-connections", 8: "not-permitted", 9: "shutting-down",
            20: "no-token", 21: "token-ambiguous", 22: "token-absent", 23: "token-removed", 24: "not-unlocked",
            30: "object-not-found", 31: "object-ambiguous", 32: "mechanism-invalid", 33: "data-invalid",
            34: "key-usage-not-permitted", 35: "invalid-argument", 36: "denied-by-policy", 37: "not-confirmed", 40: "token-failure", 50: "unsupported", 99: "internal-error",
        ]
        return names[rawValue] ?? "error-\(rawValue)"
    }
}

/// A mechanism on the wire: PKCS#11 numbers, the lingua franca of tokens.
public struct WireMechanism: Sendable, Equatable {
    /// `CKM_*`.
    public var type: UInt64
    /// For OAEP and PSS: the hash `CKM_*` (0 when not used).
    public var hash: UInt64
    /// For OAEP and PSS: `CKG_MGF1_*` (0 when not used).
    public var mgf: UInt64
    /// For PSS: the salt length.
    public var saltLength: UInt32
    /// For OAEP: the label (usually empty).
    public var label: [UInt8]

    public init(type: UInt64, hash: UInt64 = 0, mgf: UInt64 = 0, saltLength: UInt32 = 0, label: [UInt8] = []) {
        self.type = type; self.hash = hash; self.mgf = mgf; self.saltLength = saltLength; self.label = label
    }

    func write(_ w: WireWriter) { w.u64(type); w.u64(hash); w.u64(mgf); w.u32(saltLength); w.bytes(label) }
    static func read(_ r: inout WireReader) throws(WireError) -> WireMechanism {
        WireMechanism(type: try r.u64(), hash: try r.u64(), mgf: try r.u64(), saltLength: try r.u32(), label: try r.bytes())
    }
}

/// Key types the agent reports and generates.
public enum WireKeyType: UInt8, Sendable, Equatable, Codable {
    case rsa = 1
    case ec = 2
}

/// What a key may be used for (from `CKA_SIGN`, `CKA_DECRYPT`, …).
public struct KeyUsages: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let sign = KeyUsages(rawValue: 1)
    public static let decrypt = KeyUsages(rawValue: 2)
    public static let derive = KeyUsages(rawValue: 4)
    public static let unwrap = KeyUsages(rawValue: 8)
    public static let verify = KeyUsages(rawValue: 16)
    public static let encrypt = KeyUsages(rawValue: 32)

    public var names: [String] {
        [(KeyUsages.sign, "sign"), (.decrypt, "decrypt"), (.derive, "derive"), (.unwrap, "unwrap"), (.verify, "verify"), (.encrypt, "encrypt")]
            .filter { contains($0.0) }.map(\.1)
    }
}

/// The token's own retry counter for the user code, as a value: what the PKCS#11 module turns into
/// `CKF_USER_PIN_COUNT_LOW`, `CKF_USER_PIN_FINAL_TRY` and `CKF_USER_PIN_LOCKED` (the words in
/// `TokenEntry.tokenCounter` are for people, never compared).
public enum CardCounter: Sendable, Equatable {
    /// The token does not say.
    case notReported
    /// All is well; with the number of tries left when the token reports it (a PC/SC card does).
    case ok(triesLeft: UInt32?)
    /// A wrong code was entered since the last correct one.
    case countLow
    /// One more wrong code blocks the code on the token.
    case finalTry
    /// The token has blocked the code (it needs the administrator code or PUK).
    case blocked

    func write(_ w: WireWriter) {
        switch self {
        case .notReported: w.u8(0); w.u8(0)
        case .ok(let left): w.u8(1); w.optional(left, w.u32)
        case .countLow: w.u8(2); w.u8(0)
        case .finalTry: w.u8(3); w.u8(0)
        case .blocked: w.u8(4); w.u8(0)
        }
    }
    static func read(_ r: inout WireReader) throws(WireError) -> CardCounter {
        let state = try r.u8()
        let left = try r.optional { (r: inout WireReader) throws(WireError) in try r.u32() }
        if state != 1, left != nil { throw WireError("tries left sent with card counter state \(state)") }
        switch state {
        case 0: return .notReported
        case 1: return .ok(triesLeft: left)
        case 2: return .countLow
        case 3: return .finalTry
        case 4: return .blocked
        default: throw WireError("unknown card counter state \(state)")
        }
    }
}

/// A token as the agent sees it, with its access-code state.
public struct TokenEntry: Sendable, Equatable {
    public var uri: String
    public var label: String
    public var manufacturer: String
    public var model: String
    public var serial: String
    public var software: Bool
    public var unlocked: Bool
    /// Wrong codes in a row recorded by Signet.
    public var failures: UInt32
    /// Tries left before Signet locks the token.
    public var triesLeft: UInt32
    /// Seconds left of a Signet lock, if locked.
    public var lockedSeconds: UInt32?
    /// The token's own retry counter, in words ("ok", "final try", "blocked", "not reported").
    public var tokenCounter: String
    /// Why the ledger is unreadable, if it is.
    public var ledgerDamage: String?
    /// Counts changes to the token's objects (a key or certificate written or deleted, the token
    /// presented again) since the agent started: a client that caches the objects (the PKCS#11
    /// module) lists them again when it moves.
    public var changes: UInt32
    /// The token's own retry counter as a value (`tokenCounter` is the same in words).
    public var cardCounter: CardCounter

    public init(uri: String, label: String, manufacturer: String, model: String, serial: String, software: Bool, unlocked: Bool,
                failures: UInt32, triesLeft: UInt32, lockedSeconds: UInt32?, tokenCounter: String, ledgerDamage: String?,
                changes: UInt32 = 0, cardCounter: CardCounter = .notReported) {
        self.uri = uri; self.label = label; self.manufacturer = manufacturer; self.model = model; self.serial = serial
        self.software = software; self.unlocked = unlocked; self.failures = failures; self.triesLeft = triesLeft
        self.lockedSeconds = lockedSeconds; self.tokenCounter = tokenCounter; self.ledgerDamage = ledgerDamage; self.changes = changes
        self.cardCounter = cardCounter
    }

    func write(_ w: WireWriter) {
        w.string(uri); w.string(label); w.string(manufacturer); w.string(model); w.string(serial)
        w.bool(software); w.bool(unlocked); w.u32(failures); w.u32(triesLeft)
        w.optional(lockedSeconds, w.u32); w.string(tokenCounter); w.optional(ledgerDamage, w.string); w.u32(changes)
        cardCounter.write(w)
    }
    static func read(_ r: inout WireReader) throws(WireError) -> TokenEntry {
        TokenEntry(uri: try r.string(), label: try r.string(), manufacturer: try r.string(), model: try r.string(), serial: try r.string(),
                   software: try r.bool(), unlocked: try r.bool(), failures: try r.u32(), triesLeft: try r.u32(),
                   lockedSeconds: try r.optional { (r: inout WireReader) throws(WireError) in try r.u32() },
                   tokenCounter: try r.string(),
                   ledgerDamage: try r.optional { (r: inout WireReader) throws(WireError) in try r.string() },
                   changes: try r.u32(), cardCounter: try CardCounter.read(&r))
    }
}

/// A key or certificate on a token. Never carries private key material.
public struct ObjectEntry: Sendable, Equatable {
    public enum Kind: UInt8, Sendable, Equatable { case privateKey = 1, publicKey = 2, certificate = 3 }

    public var uri: String
    public var kind: Kind
    public var label: String
    /// `CKA_ID`: what links a key to its certificate.
    public var id: [UInt8]
    public var keyType: WireKeyType?
    /// Modulus bits or curve size; 0 for certificates.
    public var bits: UInt32
    public var usages: KeyUsages
    /// For certificates: the DER subject name.
    public var subject: [UInt8]
    /// For keys: the DER SubjectPublicKeyInfo (what links a key to its certificate); empty when unknown.
    public var publicKeyInfo: [UInt8]

    public init(uri: String, kind: Kind, label: String, id: [UInt8], keyType: WireKeyType?, bits: UInt32, usages: KeyUsages,
                subject: [UInt8] = [], publicKeyInfo: [UInt8] = []) {
        self.uri = uri; self.kind = kind; self.label = label; self.id = id; self.keyType = keyType
        self.bits = bits; self.usages = usages; self.subject = subject; self.publicKeyInfo = publicKeyInfo
    }

    func write(_ w: WireWriter) {
        w.string(uri); w.u8(kind.rawValue); w.string(label); w.bytes(id)
        w.optional(keyType) { w.u8($0.rawValue) }
        w.u32(bits); w.u16(usages.rawValue); w.bytes(subject); w.bytes(publicKeyInfo)
    }
    static func read(_ r: inout WireReader) throws(WireError) -> ObjectEntry {
        let uri = try r.string()
        let rawKind = try r.u8()
        guard let kind = Kind(rawValue: rawKind) else { throw WireError("unknown object kind \(rawKind)") }
        let label = try r.string(), id = try r.bytes()
        let rawType = try r.optional { (r: inout WireReader) throws(WireError) in try r.u8() }
        var keyType: WireKeyType?
        if let rawType {
            guard let known = WireKeyType(rawValue: rawType) else { throw WireError("unknown key type \(rawType)") }
            keyType = known
        }
        return ObjectEntry(uri: uri, kind: kind, label: label, id: id, keyType: keyType, bits: try r.u32(),
                           usages: KeyUsages(rawValue: try r.u16()), subject: try r.bytes(), publicKeyInfo: try r.bytes())
    }
}

/// One page of a token listing (`listObjectPage`): entries from `start` on, as many as fit in a frame.
/// With certificate values asked for, `values[i]` is the DER of `objects[i]` when it is a certificate
/// (empty for keys, and for a certificate too large to share a frame, which `getCertificate` then reads).
public struct ObjectPage: Sendable, Equatable {
    public var objects: [ObjectEntry]
    public var values: [[UInt8]]
    /// Where the next page starts; nil on the last page.
    public var next: UInt32?

    public init(objects: [ObjectEntry], values: [[UInt8]], next: UInt32?) {
        self.objects = objects; self.values = values; self.next = next
    }

    /// Room for a page's entries in one response frame: the frame less its header and this page's own fields.
    public static let budget = AgentProtocol.maximumFrame - 1024

    /// The page of `all` (with `values`, one per entry, empty when not asked for) that starts at `start`:
    /// whole entries with their values while they fit in `budget` bytes, and always at least one (alone on
    /// its page and still too large, an entry goes without its value). Pure, so it is tested here.
    public static func slice(_ all: [ObjectEntry], values: [[UInt8]], from start: Int, budget: Int = ObjectPage.budget) -> ObjectPage {
        guard start < all.count else { return ObjectPage(objects: [], values: [], next: nil) }
        var objects: [ObjectEntry] = [], kept: [[UInt8]] = [], used = 0, index = start
        while index < all.count {
            let writer = WireWriter()
            all[index].write(writer)
            let entryBytes = writer.buffer.count + 4
            var value = index < values.count ? values[index] : []
            if used + entryBytes + 4 + value.count > budget {
                guard objects.isEmpty else { break }  // the next page starts with it
                value = []  // alone on a page and still too large: without its value
            }
            objects.append(all[index]); kept.append(value)
            used += entryBytes + 4 + value.count
            index += 1
        }
        return ObjectPage(objects: objects, values: kept, next: index < all.count ? UInt32(index) : nil)
    }

    func write(_ w: WireWriter) {
        w.array(objects) { $0.write(w) }; w.array(values) { w.bytes($0) }; w.optional(next, w.u32)
    }
    static func read(_ r: inout WireReader) throws(WireError) -> ObjectPage {
        let objects = try r.array(ObjectEntry.read)
        let values = try r.array { (r: inout WireReader) throws(WireError) in try r.bytes() }
        guard values.count == objects.count else { throw WireError("an object page has \(values.count) values for \(objects.count) objects") }
        return ObjectPage(objects: objects, values: values, next: try r.optional { (r: inout WireReader) throws(WireError) in try r.u32() })
    }
}

/// The outcome of unlock, change-code and unblock, with the words to show.
public struct AccessOutcome: Sendable, Equatable {
    public enum Kind: UInt8, Sendable, Equatable, CaseIterable {
        case unlocked = 0, alreadyUnlocked, wrongCode, locked, cardFinalTry, cardBlocked, invalidLength, notPresented, failed, ledgerDamaged
        /// `unlockAsking`: the person cancelled the prompt, or the prompt program ended without an answer (nothing counted).
        case cancelled = 10
        /// `unlockAsking`: nobody answered the prompt in time (nothing counted).
        case timedOut = 11
        /// `unlockAsking`: the client named no screen or terminal the agent may use (nothing asked, nothing counted).
        case nowhereToAsk = 12
    }
    public var kind: Kind
    public var triesLeft: UInt32?
    public var lockedSeconds: UInt32?
    /// What the access-code manager said, for a person.
    public var message: String

    public init(kind: Kind, triesLeft: UInt32? = nil, lockedSeconds: UInt32? = nil, message: String) {
        self.kind = kind; self.triesLeft = triesLeft; self.lockedSeconds = lockedSeconds; self.message = message
    }

    /// Accepted (or already unlocked).
    public var succeeded: Bool { kind == .unlocked || kind == .alreadyUnlocked }
}

/// An EC or RSA private key to import (from a PKCS#12 file the CLI parsed).
/// Each component is held in a zeroing buffer.
public struct ImportedKey: Sendable {
    public enum Component: UInt8, Sendable, CaseIterable {
        case modulus = 1, publicExponent, privateExponent, prime1, prime2, exponent1, exponent2, coefficient
        case ecParameters = 20, ecPrivateValue, ecPoint
    }
    public var keyType: WireKeyType
    public var components: [(Component, SharedSecret)]

    public init(keyType: WireKeyType, components: [(Component, SharedSecret)]) {
        self.keyType = keyType; self.components = components
    }
}

/// Bounds of a `clientEnvironment` request: what a client says about where it runs, no more.
public enum ClientEnvironmentLimits {
    /// Entries per request.
    public static let entries = 16
    /// Bytes of one entry, name and value together.
    public static let bytes = 1024
    /// The names a client sends (others are kept but never used).
    public static let names = ["DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS", "tty", "TERM"]
}

/// A request from a client.
public enum AgentRequest: Sendable {
    /// Must be first: the client's magic, the versions it speaks, its name.
    case hello(minVersion: UInt16, maxVersion: UInt16, client: String)
    case status
    case listTokens
    /// The DER certificate an object URI names.
    case getCertificate(object: String)
    case unlock(token: String?, code: SharedSecret, finalTry: Bool)
    /// Logs out one token, or all when `token` is nil.
    case lock(token: String?)
    /// Signs `data` (a digest, or a DigestInfo for `CKM_RSA_PKCS`) with the key `key` names.
    case sign(key: String, mechanism: WireMechanism, data: [UInt8])
    case decrypt(key: String, mechanism: WireMechanism, ciphertext: [UInt8])
    /// ECDH: `peerPoint` is the peer's uncompressed public point; `kdf` a `CKD_*`.
    case derive(key: String, kdf: UInt64, sharedData: [UInt8], peerPoint: [UInt8])
    /// Generates a non-extractable key pair; `curve` is `p256`/`p384`/`p521` for EC.
    case generateKeyPair(token: String?, keyType: WireKeyType, bits: UInt32, curve: String, id: [UInt8], label: String)
    case storeCertificate(token: String?, der: [UInt8], id: [UInt8], label: String)
    case deleteObject(object: String)
    case importKey(token: String?, key: ImportedKey, id: [UInt8], label: String)
    case changeCode(token: String?, old: SharedSecret, new: SharedSecret, finalTry: Bool)
    case unblock(token: String?, soCode: SharedSecret, newCode: SharedSecret, finalTry: Bool)
    /// Creates a SoftHSM2 software token inside the agent, so it is usable at once.
    case initSoftwareToken(label: String, userCode: SharedSecret, soCode: SharedSecret)
    /// Every present token as its module describes it, with the modules that failed (no login).
    case tokenDetails
    /// Rebuilds the damaged access-code ledger of one token (the only one when nil); it is then locked for the full lock time.
    case repairLedger(token: String?)
    /// The smart-card readers PC/SC reports, with their cards.
    case listReaders
    /// The versions of the libraries and PKCS#11 modules the agent loaded.
    case versions
    /// A page of the keys and certificates of one token (a PKCS#11 URI) or of all, from entry `start` on, with the certificates' DER when asked for:
    /// one frame whatever the token holds, and no `getCertificate` round trip per certificate.
    case listObjectPage(token: String?, start: UInt32, certificateValues: Bool)
    /// Where the client can be asked (its `DISPLAY`, `WAYLAND_DISPLAY`, `XAUTHORITY`, `DBUS_SESSION_BUS_ADDRESS`,
    /// `tty`, `TERM`), kept by the agent for the prompts it makes for this connection. At most
    /// `ClientEnvironmentLimits.entries` entries of at most `ClientEnvironmentLimits.bytes` each.
    case clientEnvironment(entries: [(String, String)])
    /// Unlocks a token (the only one when nil) with a code the agent asks the person for itself,
    /// through pinentry on the screen or terminal `clientEnvironment` named. Answers `access`.
    case unlockAsking(token: String?)
    /// The per-client rules in effect (from which file and line) and the programs that used keys recently.
    case policy
    /// Stops the agent (owner only, like every request).
    case shutdown
    /// Reads the configuration, the lockout policy and the client rules again, as SIGHUP does, and answers
    /// `reloaded` once they are in force.
    case reload

    /// The kind byte.
    public var kind: UInt8 { messageKind.rawValue }

    /// The kind: its byte, name, layout and answers (`AgentRequest.Kind`).
    public var messageKind: Kind {
        switch self {
        case .hello: .hello
        case .status: .status
        case .listTokens: .listTokens
        case .getCertificate: .getCertificate
        case .unlock: .unlock
        case .lock: .lock
        case .sign: .sign
        case .decrypt: .decrypt
        case .derive: .derive
        case .generateKeyPair: .generateKeyPair
        case .storeCertificate: .storeCertificate
        case .deleteObject: .deleteObject
        case .importKey: .importKey
        case .changeCode: .changeCode
        case .unblock: .unblock
        case .initSoftwareToken: .initSoftwareToken
        case .tokenDetails: .tokenDetails
        case .repairLedger: .repairLedger
        case .listReaders: .listReaders
        case .versions: .versions
        case .listObjectPage: .listObjectPage
        case .clientEnvironment: .clientEnvironment
        case .unlockAsking: .unlockAsking
        case .policy: .policy
        case .shutdown: .shutdown
        case .reload: .reload
        }
    }

    /// Sign, decrypt and derive: the requests that use a private key (per-client rules apply to them).
    public var usesPrivateKey: Bool {
        switch self {
        case .sign, .decrypt, .derive: true
        default: false
        }
    }

    /// A short name for logs (never the fields).
    public var name: String { messageKind.name }

    func writeFields(_ w: WireWriter) {
        switch self {
        case .hello(let minVersion, let maxVersion, let client):
            w.buffer.append(contentsOf: AgentProtocol.magic); w.u16(minVersion); w.u16(maxVersion); w.string(client)
        case .status, .listTokens, .shutdown, .tokenDetails, .listReaders, .versions, .policy, .reload:
            break
        case .repairLedger(let token), .unlockAsking(let token):
            w.optional(token, w.string)
        case .clientEnvironment(let entries):
            w.array(entries) { w.string($0.0); w.string($0.1) }
        case .listObjectPage(let token, let start, let certificateValues):
            w.optional(token, w.string); w.u32(start); w.bool(certificateValues)
        case .getCertificate(let object), .deleteObject(let object):
            w.string(object)
        case .unlock(let token, let code, let finalTry):
            w.optional(token, w.string); w.secret(code); w.bool(finalTry)
        case .lock(let token):
            w.optional(token, w.string)
        case .sign(let key, let mechanism, let data):
            w.string(key); mechanism.write(w); w.bytes(data)
        case .decrypt(let key, let mechanism, let ciphertext):
            w.string(key); mechanism.write(w); w.bytes(ciphertext)
        case .derive(let key, let kdf, let sharedData, let peerPoint):
            w.string(key); w.u64(kdf); w.bytes(sharedData); w.bytes(peerPoint)
        case .generateKeyPair(let token, let keyType, let bits, let curve, let id, let label):
            w.optional(token, w.string); w.u8(keyType.rawValue); w.u32(bits); w.string(curve); w.bytes(id); w.string(label)
        case .storeCertificate(let token, let der, let id, let label):
            w.optional(token, w.string); w.bytes(der); w.bytes(id); w.string(label)
        case .importKey(let token, let key, let id, let label):
            w.optional(token, w.string); w.u8(key.keyType.rawValue)
            w.array(key.components) { w.u8($0.0.rawValue); w.secret($0.1) }
            w.bytes(id); w.string(label)
        case .changeCode(let token, let old, let new, let finalTry):
            w.optional(token, w.string); w.secret(old); w.secret(new); w.bool(finalTry)
        case .unblock(let token, let so, let new, let finalTry):
            w.optional(token, w.string); w.secret(so); w.secret(new); w.bool(finalTry)
        case .initSoftwareToken(let label, let user, let so):
            w.string(label); w.secret(user); w.secret(so)
        }
    }

    static func readFields(kind: Kind, _ r: inout WireReader) throws(WireError) -> AgentRequest {
        func optionalText(_ r: inout WireReader) throws(WireError) -> String? {
            try r.optional { (r: inout WireReader) throws(WireError) in try r.string() }
        }
        switch kind {
        case .hello:
            let magic = try (0..<AgentProtocol.magic.count).map { (_: Int) throws(WireError) in try r.u8() }
            guard magic == AgentProtocol.magic else { throw WireError("the hello does not start with the signet-agent magic") }
            return .hello(minVersion: try r.u16(), maxVersion: try r.u16(), client: try r.string())
        case .status: return .status
        case .listTokens: return .listTokens
        case .getCertificate: return .getCertificate(object: try r.string())
        case .unlock: return .unlock(token: try optionalText(&r), code: try r.secret(), finalTry: try r.bool())
        case .lock: return .lock(token: try optionalText(&r))
        case .sign: return .sign(key: try r.string(), mechanism: try WireMechanism.read(&r), data: try r.bytes())
        case .decrypt: return .decrypt(key: try r.string(), mechanism: try WireMechanism.read(&r), ciphertext: try r.bytes())
        case .derive: return .derive(key: try r.string(), kdf: try r.u64(), sharedData: try r.bytes(), peerPoint: try r.bytes())
        case .generateKeyPair:
            let token = try optionalText(&r)
            let rawType = try r.u8()
            guard let keyType = WireKeyType(rawValue: rawType) else { throw WireError("unknown key type \(rawType)") }
            return .generateKeyPair(token: token, keyType: keyType, bits: try r.u32(), curve: try r.string(), id: try r.bytes(), label: try r.string())
        case .storeCertificate: return .storeCertificate(token: try optionalText(&r), der: try r.bytes(), id: try r.bytes(), label: try r.string())
        case .deleteObject: return .deleteObject(object: try r.string())
        case .importKey:
            let token = try optionalText(&r)
            let rawType = try r.u8()
            guard let keyType = WireKeyType(rawValue: rawType) else { throw WireError("unknown key type \(rawType)") }
            let components = try r.array { (r: inout WireReader) throws(WireError) -> (ImportedKey.Component, SharedSecret) in
                let tag = try r.u8()
                guard let component = ImportedKey.Component(rawValue: tag) else { throw WireError("unknown key component \(tag)") }
                return (component, try r.secret())
            }
            return .importKey(token: token, key: ImportedKey(keyType: keyType, components: components), id: try r.bytes(), label: try r.string())
        case .changeCode: return .changeCode(token: try optionalText(&r), old: try r.secret(), new: try r.secret(), finalTry: try r.bool())
        case .unblock: return .unblock(token: try optionalText(&r), soCode: try r.secret(), newCode: try r.secret(), finalTry: try r.bool())
        case .initSoftwareToken: return .initSoftwareToken(label: try r.string(), userCode: try r.secret(), soCode: try r.secret())
        case .tokenDetails: return .tokenDetails
        case .repairLedger: return .repairLedger(token: try optionalText(&r))
        case .listReaders: return .listReaders
        case .versions: return .versions
        case .listObjectPage: return .listObjectPage(token: try optionalText(&r), start: try r.u32(), certificateValues: try r.bool())
        case .clientEnvironment:
            // The bounds are the agent's to enforce (with an answer the client can read), not the frame's.
            return .clientEnvironment(entries: try r.array { (r: inout WireReader) throws(WireError) -> (String, String) in (try r.string(), try r.string()) })
        case .unlockAsking: return .unlockAsking(token: try optionalText(&r))
        case .policy: return .policy
        case .shutdown: return .shutdown
        case .reload: return .reload
        }
    }
}

/// The agent's status.
public struct AgentStatus: Sendable, Equatable {
    public var agentVersion: String
    public var pid: UInt32
    public var uptimeSeconds: UInt64
    public var connections: UInt32
    public var tokens: [TokenEntry]
    /// What the agent found wrong in its configuration when it last read it: files it refused because others
    /// could have written them, values it did not take (each naming its file and what to do).
    public var problems: [String]

    public init(agentVersion: String, pid: UInt32, uptimeSeconds: UInt64, connections: UInt32, tokens: [TokenEntry], problems: [String] = []) {
        self.agentVersion = agentVersion; self.pid = pid; self.uptimeSeconds = uptimeSeconds; self.connections = connections; self.tokens = tokens
        self.problems = problems
    }
}

/// Interim messages sent before the final response to the same request.
public enum NoticeKind: UInt8, Sendable, Equatable {
    /// The token is absent: the user should insert it or tap it on the reader.
    case presentToken = 1
}

/// A response from the agent.
public enum AgentResponse: Sendable, Equatable {
    case hello(version: UInt16, agentVersion: String, pid: UInt32)
    case status(AgentStatus)
    case tokens([TokenEntry])
    case certificate(der: [UInt8])
    case access(AccessOutcome)
    case ok(message: String)
    case signature([UInt8])
    case plaintext([UInt8])
    case derived([UInt8])
    case keyPair(publicKey: String, privateKey: String, subjectPublicKeyInfo: [UInt8])
    case stored(object: String)
    /// Answers `tokenDetails`.
    case tokenDetails([TokenDetail], moduleFailures: [ModuleFailure])
    /// Answers `listReaders`.
    case readers([ReaderEntry])
    /// Answers `versions`.
    case versions(AgentVersions)
    /// Answers `listObjectPage`.
    case objectPage(ObjectPage)
    /// Answers `policy`.
    case policy(PolicyReport)
    /// Answers `reload`, once the settings it reports are in force.
    case reloaded(ReloadReport)
    /// Interim: the request goes on; the final response follows with the same id.
    case notice(NoticeKind, message: String)
    case error(AgentErrorCode, message: String)

    /// The kind byte.
    public var kind: UInt8 { messageKind.rawValue }

    /// The kind: its byte, name and layout (`AgentResponse.Kind`).
    public var messageKind: Kind {
        switch self {
        case .hello: .hello
        case .status: .status
        case .tokens: .tokens
        case .certificate: .certificate
        case .access: .access
        case .ok: .ok
        case .signature: .signature
        case .plaintext: .plaintext
        case .derived: .derived
        case .keyPair: .keyPair
        case .stored: .stored
        case .tokenDetails: .tokenDetails
        case .notice: .notice
        case .readers: .readers
        case .versions: .versions
        case .objectPage: .objectPage
        case .policy: .policy
        case .reloaded: .reloaded
        case .error: .error
        }
    }

    /// True for messages that do not end their request.
    public var isInterim: Bool { if case .notice = self { true } else { false } }

    func writeFields(_ w: WireWriter) {
        switch self {
        case .hello(let version, let agentVersion, let pid):
            w.u16(version); w.string(agentVersion); w.u32(pid)
        case .status(let status):
            w.string(status.agentVersion); w.u32(status.pid); w.u64(status.uptimeSeconds); w.u32(status.connections)
            w.array(status.tokens) { $0.write(w) }; w.array(status.problems, w.string)
        case .tokens(let tokens):
            w.array(tokens) { $0.write(w) }
        case .certificate(let der), .signature(let der), .plaintext(let der), .derived(let der):
            w.bytes(der)
        case .access(let outcome):
            w.u8(outcome.kind.rawValue); w.optional(outcome.triesLeft, w.u32); w.optional(outcome.lockedSeconds, w.u32); w.string(outcome.message)
        case .ok(let message):
            w.string(message)
        case .keyPair(let publicKey, let privateKey, let spki):
            w.string(publicKey); w.string(privateKey); w.bytes(spki)
        case .stored(let object):
            w.string(object)
        case .tokenDetails(let tokens, let failures):
            w.array(tokens) { $0.write(w) }; w.array(failures) { $0.write(w) }
        case .readers(let readers):
            w.array(readers) { $0.write(w) }
        case .versions(let versions):
            versions.write(w)
        case .objectPage(let page):
            page.write(w)
        case .policy(let report):
            report.write(w)
        case .reloaded(let report):
            report.write(w)
        case .notice(let kind, let message):
            w.u8(kind.rawValue); w.string(message)
        case .error(let code, let message):
            w.u16(code.rawValue); w.string(message)
        }
    }

    static func readFields(kind: Kind, _ r: inout WireReader) throws(WireError) -> AgentResponse {
        func u32(_ r: inout WireReader) throws(WireError) -> UInt32 { try r.u32() }
        switch kind {
        case .hello: return .hello(version: try r.u16(), agentVersion: try r.string(), pid: try r.u32())
        case .status:
            return .status(AgentStatus(agentVersion: try r.string(), pid: try r.u32(), uptimeSeconds: try r.u64(), connections: try r.u32(),
                                       tokens: try r.array(TokenEntry.read), problems: try r.array { (r: inout WireReader) throws(WireError) in try r.string() }))
        case .tokens: return .tokens(try r.array(TokenEntry.read))
        case .certificate: return .certificate(der: try r.bytes())
        case .access:
            let raw = try r.u8()
            guard let outcomeKind = AccessOutcome.Kind(rawValue: raw) else { throw WireError("unknown access outcome \(raw)") }
            return .access(AccessOutcome(kind: outcomeKind, triesLeft: try r.optional(u32), lockedSeconds: try r.optional(u32), message: try r.string()))
        case .ok: return .ok(message: try r.string())
        case .signature: return .signature(try r.bytes())
        case .plaintext: return .plaintext(try r.bytes())
        case .derived: return .derived(try r.bytes())
        case .keyPair: return .keyPair(publicKey: try r.string(), privateKey: try r.string(), subjectPublicKeyInfo: try r.bytes())
        case .stored: return .stored(object: try r.string())
        case .tokenDetails: return .tokenDetails(try r.array(TokenDetail.read), moduleFailures: try r.array(ModuleFailure.read))
        case .readers: return .readers(try r.array(ReaderEntry.read))
        case .versions: return .versions(try AgentVersions.read(&r))
        case .objectPage: return .objectPage(try ObjectPage.read(&r))
        case .policy: return .policy(try PolicyReport.read(&r))
        case .reloaded: return .reloaded(try ReloadReport.read(&r))
        case .notice:
            let raw = try r.u8()
            guard let notice = NoticeKind(rawValue: raw) else { throw WireError("unknown notice \(raw)") }
            return .notice(notice, message: try r.string())
        case .error: return .error(AgentErrorCode(rawValue: try r.u16()), message: try r.string())
        }
    }
}

/// Turning messages into frames and frames into messages.
public enum AgentFrame {
    /// A request id, chosen by the client; responses carry it back.
    public typealias ID = UInt32

    /// Encodes a request as a complete frame (length prefix included) into a zeroing buffer.
    @discardableResult
    public static func encode(_ request: AgentRequest, id: ID, into buffer: WireBuffer = WireBuffer()) -> WireBuffer {
        encode(kind: request.kind, id: id, into: buffer, request.writeFields)
    }

    /// Encodes a response as a complete frame.
    @discardableResult
    public static func encode(_ response: AgentResponse, id: ID, into buffer: WireBuffer = WireBuffer()) -> WireBuffer {
        encode(kind: response.kind, id: id, into: buffer, response.writeFields)
    }

    private static func encode(kind: UInt8, id: ID, into buffer: WireBuffer, _ fields: (WireWriter) -> Void) -> WireBuffer {
        let writer = WireWriter(buffer)
        let start = buffer.count
        writer.u32(0)
        writer.u8(kind)
        writer.u32(id)
        fields(writer)
        buffer.patchUInt32(UInt32(buffer.count - start - 4), at: start)
        return buffer
    }

    /// Reads the body length from a 4-byte prefix, refusing anything over the maximum.
    /// - Throws: `WireError` of kind `.frameTooLarge` for a length over `maximum`, `.malformed` for a
    ///   prefix that is not 4 bytes or a length shorter than a header.
    public static func bodyLength(_ prefix: UnsafeRawBufferPointer, maximum: Int = AgentProtocol.maximumFrame) throws(WireError) -> Int {
        guard prefix.count == 4 else { throw WireError("a length prefix is 4 bytes") }
        let length = Int(prefix.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        guard length >= 5 else { throw WireError("a frame of \(length) bytes is shorter than its header") }
        guard length <= maximum else { throw WireError(.frameTooLarge, "a frame of \(length) bytes is larger than the \(maximum)-byte limit") }
        return length
    }

    /// The id and kind of a body, readable even when the rest is malformed (to answer with the right id).
    public static func header(_ body: UnsafeRawBufferPointer) -> (kind: UInt8, id: ID)? {
        guard body.count >= 5 else { return nil }
        return (body[0], body[1...4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
    }

    /// Decodes a request body (without the length prefix).
    /// - Throws: `WireError` of kind `.unknownKind` when the kind byte names no request (the id, for the
    ///   answer, is in `header`), `.malformed` when the fields do not match the kind's layout or bytes are left over.
    public static func decodeRequest(_ body: UnsafeRawBufferPointer) throws(WireError) -> (id: ID, request: AgentRequest) {
        let (id, request) = try decode(body, "request", AgentRequest.readFields)
        return (id, request)
    }

    /// Decodes a response body (without the length prefix).
    /// - Throws: `WireError` of kind `.unknownKind` when the kind byte names no response, `.malformed`
    ///   when the fields do not match the kind's layout or bytes are left over.
    public static func decodeResponse(_ body: UnsafeRawBufferPointer) throws(WireError) -> (id: ID, response: AgentResponse) {
        let (id, response) = try decode(body, "response", AgentResponse.readFields)
        return (id, response)
    }

    private static func decode<Kind: RawRepresentable<UInt8>, Message>(
        _ body: UnsafeRawBufferPointer, _ what: String, _ read: (Kind, inout WireReader) throws(WireError) -> Message
    ) throws(WireError) -> (ID, Message) {
        var reader = WireReader(body)
        let byte = try reader.u8()
        let id = try reader.u32()
        guard let kind = Kind(rawValue: byte) else { throw WireError(.unknownKind, "unknown \(what) kind 0x\(Hex.encode([byte]))") }
        let message = try read(kind, &reader)
        try reader.finish()
        return (id, message)
    }
}
