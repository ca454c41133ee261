#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import SignetCore

/// A PIV card (NIST SP 800-73-4) for tests, as far as OpenSC's PIV driver and
/// Signet use one: SELECT of the PIV application, GET DATA of the discovery
/// object, the CHUID and the certificate objects, VERIFY of the application PIN
/// (reference 0x80) with a real retry counter that blocks after three wrong
/// codes, and GENERAL AUTHENTICATE with the card's keys (raw RSA, ECDSA over a
/// digest, ECDH). Commands may be chained (CLA 0x10) or use extended lengths;
/// long answers come in pieces with `61xx` and GET RESPONSE.
///
/// This is a test double for the one thing a build machine cannot have, a
/// physical card; it runs behind the real vpcd reader driver and the real
/// pcscd, so everything above the card (pcscd, OpenSC, p11-kit, Signet) is
/// exercised for real.
public final class VirtualCard: Sendable {
    /// The PIV application identifier prefix.
    public static let pivAID: [UInt8] = [0xA0, 0x00, 0x00, 0x03, 0x08]
    /// The full PIV AID with version (what the application answers with).
    static let pivFullAID: [UInt8] = [0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00]
    /// The printed-information object's tag; the card fills it with `largeObjectLength`
    /// bytes so that reading it needs `61xx` GET RESPONSE.
    public static let largeObjectTag: [UInt8] = [0x5F, 0xC1, 0x09]
    public static let largeObjectLength = 600
    /// The object returned only when Le is exact (`6Cxx` otherwise).
    public static let exactObject: [UInt8] = Array("SIGNET-6C".utf8)

    /// A key slot: the key reference (0x9A PIV authentication, 0x9C digital
    /// signature, 0x9D key management, 0x9E card authentication), its key, and
    /// the DER certificate stored in the slot's data object.
    public struct Slot: Sendable {
        public let reference: UInt8
        public let key: CardKey
        public let certificate: [UInt8]
        public init(reference: UInt8, key: CardKey, certificate: [UInt8]) {
            self.reference = reference
            self.key = key
            self.certificate = certificate
        }
    }

    private struct State {
        var pin: [UInt8]
        var triesLeft: Int
        var verified = false
        var selected = false
        var pendingResponse: [UInt8] = []
        var chained: (ins: UInt8, data: [UInt8])?
        var verifyAttempts = 0
        var operations = 0
        var operationsStarted = 0
        var operationDelay = 0.0
    }

    private let state: Mutex<State>
    private let slots: [UInt8: Slot]
    private let objects: [[UInt8]: [UInt8]]
    public let maximumTries: Int
    public let atr: [UInt8]
    /// The card's GUID (in the CHUID); OpenSC derives the token's serial number from it.
    public let guid: [UInt8]

    /// - Parameters:
    ///   - pin: the application PIN (PIV pads it to 8 bytes with `FF`).
    ///   - maximumTries: tries before the PIN blocks.
    ///   - slots: the keys and certificates on the card.
    ///   - guid: 16 bytes; distinct cards need distinct GUIDs.
    public init(pin: [UInt8], maximumTries: Int = 3, slots: [Slot] = [], guid: [UInt8] = Array(repeating: 0x5A, count: 16)) {
        state = Mutex(State(pin: VirtualCard.pad(pin), triesLeft: maximumTries))
        self.maximumTries = maximumTries
        self.slots = Dictionary(slots.map { ($0.reference, $0) }, uniquingKeysWith: { _, last in last })
        self.guid = guid
        atr = VirtualCard.makeATR(historical: Array("SIGNETVCARD".utf8))
        var objects: [[UInt8]: [UInt8]] = [:]
        // Discovery object: the PIV AID and the PIN usage policy (application PIN only).
        objects[[0x7E]] = TLV.encode(0x7E, TLV.encode(0x4F, VirtualCard.pivFullAID) + TLV.encode(0x5F2F, [0x40, 0x00]))
        // CHUID: FASC-N, GUID, expiration date, empty signature, error-detection code.
        let chuid = TLV.encode(0x30, [0xD4] + Array(repeating: 0x21, count: 24)) + TLV.encode(0x34, guid)
            + TLV.encode(0x35, Array("20351231".utf8)) + TLV.encode(0x3E, []) + TLV.encode(0xFE, [])
        objects[[0x5F, 0xC1, 0x02]] = TLV.encode(0x53, chuid)
        objects[VirtualCard.largeObjectTag] = TLV.encode(0x53, (0..<VirtualCard.largeObjectLength).map { UInt8($0 & 0xff) })
        for slot in slots {
            guard let tag = VirtualCard.certificateObject[slot.reference] else { continue }
            // Certificate, CertInfo 0 (not compressed), error-detection code.
            objects[tag] = TLV.encode(0x53, TLV.encode(0x70, slot.certificate) + TLV.encode(0x71, [0x00]) + TLV.encode(0xFE, []))
        }
        self.objects = objects
    }

    /// The data object holding each key reference's certificate.
    static let certificateObject: [UInt8: [UInt8]] = [
        0x9A: [0x5F, 0xC1, 0x05], 0x9C: [0x5F, 0xC1, 0x0A], 0x9D: [0x5F, 0xC1, 0x0B], 0x9E: [0x5F, 0xC1, 0x01],
    ]

    /// Tries left on the PIN counter.
    public var triesLeft: Int { state.withLock { $0.triesLeft } }
    /// How many VERIFY commands with a code reached the card.
    public var verifyAttempts: Int { state.withLock { $0.verifyAttempts } }
    /// How many private-key operations (GENERAL AUTHENTICATE) the card performed.
    public var operations: Int { state.withLock { $0.operations } }
    /// How many private-key operations the card received (counted before `operationDelay`).
    public var operationsStarted: Int { state.withLock { $0.operationsStarted } }
    /// Seconds each private-key operation takes, as on a slow card: tests remove the card meanwhile.
    public var operationDelay: Double {
        get { state.withLock { $0.operationDelay } }
        set { state.withLock { $0.operationDelay = newValue } }
    }

    /// Power-off or reset: the security state is lost, the counter is not.
    public func reset() {
        state.withLock {
            $0.verified = false
            $0.selected = false
            $0.pendingResponse = []
            $0.chained = nil
        }
    }

    /// Answers one command APDU.
    public func respond(to command: [UInt8]) -> [UInt8] {
        guard command.count >= 4, let (data, le) = VirtualCard.parseBody(Array(command.dropFirst(4))) else { return [0x67, 0x00] }
        let cla = command[0], ins = command[1], p1 = command[2], p2 = command[3]
        if ins == 0x87 && cla & 0x10 == 0 {
            let delay = state.withLock { card in
                card.operationsStarted += 1
                return card.operationDelay
            }
            if delay > 0 { usleep(UInt32(delay * 1_000_000)) }
        }
        return state.withLock { card -> [UInt8] in
            // Command chaining: keep the pieces until the last one.
            if cla & 0x10 != 0 {
                if let chained = card.chained, chained.ins == ins {
                    card.chained = (ins, chained.data + data)
                } else {
                    card.chained = (ins, data)
                }
                return [0x90, 0x00]
            }
            var data = data
            if let chained = card.chained {
                card.chained = nil
                guard chained.ins == ins else { return [0x68, 0x83] }  // last command of the chain expected
                data = chained.data + data
            }
            if ins != 0xC0 { card.pendingResponse = [] }
            switch ins {
            case 0xA4 where p1 == 0x04:
                guard data.starts(with: VirtualCard.pivAID) else { return [0x6A, 0x82] }
                card.selected = true
                // Application property template: AID, and the authority's AID.
                let template = TLV.encode(0x4F, Array(VirtualCard.pivFullAID[5...])) + TLV.encode(0x79, TLV.encode(0x4F, VirtualCard.pivAID))
                return VirtualCard.answer(TLV.encode(0x61, template), card: &card)
            case 0x20:
                guard card.selected else { return [0x69, 0x85] }
                guard p2 == 0x80 else { return [0x6A, 0x88] }
                if p1 == 0xFF {  // reset the security status (log out)
                    card.verified = false
                    return [0x90, 0x00]
                }
                if card.triesLeft == 0 { return [0x69, 0x83] }
                if data.isEmpty {
                    return card.verified ? [0x90, 0x00] : [0x63, 0xC0 | UInt8(card.triesLeft)]
                }
                card.verifyAttempts += 1
                if VirtualCard.pad(data) == card.pin {
                    card.triesLeft = maximumTries
                    card.verified = true
                    return [0x90, 0x00]
                }
                card.verified = false
                card.triesLeft -= 1
                return card.triesLeft == 0 ? [0x69, 0x83] : [0x63, 0xC0 | UInt8(card.triesLeft)]
            case 0xCB where p1 == 0x3F && p2 == 0xFF:
                guard card.selected else { return [0x69, 0x85] }
                guard let request = TLV.parse(data).first, request.tag == 0x5C, let object = objects[request.value] else {
                    return [0x6A, 0x82]
                }
                return VirtualCard.answer(object, card: &card)
            case 0x87:
                guard card.selected else { return [0x69, 0x85] }
                return authenticate(algorithm: p1, reference: p2, data: data, card: &card)
            case 0xC0:
                guard !card.pendingResponse.isEmpty else { return [0x6F, 0x00] }
                let count = min(le ?? 256, card.pendingResponse.count)
                let chunk = Array(card.pendingResponse.prefix(count))
                card.pendingResponse.removeFirst(count)
                if card.pendingResponse.isEmpty { return chunk + [0x90, 0x00] }
                return chunk + [0x61, UInt8(min(card.pendingResponse.count, 256) & 0xff)]
            case 0xCA:
                let object = VirtualCard.exactObject
                guard le == object.count else { return [0x6C, UInt8(object.count)] }
                return object + [0x90, 0x00]
            default:
                return [0x6D, 0x00]
            }
        }
    }

    /// GENERAL AUTHENTICATE: `7C { 82 00, 81 challenge }` signs or decrypts,
    /// `7C { 82 00, 85 point }` derives; the answer is `7C { 82 result }`.
    private func authenticate(algorithm: UInt8, reference: UInt8, data: [UInt8], card: inout State) -> [UInt8] {
        guard let slot = slots[reference] else { return [0x6A, 0x88] }
        guard slot.key.algorithm == algorithm else { return [0x6A, 0x80] }
        if reference != 0x9E && !card.verified { return [0x69, 0x82] }
        guard let template = TLV.parse(data).first, template.tag == 0x7C else { return [0x6A, 0x80] }
        let inside = TLV.parse(template.value)
        let result: [UInt8]?
        if let challenge = inside.first(where: { $0.tag == 0x81 }) {
            result = slot.key.privateOperation(challenge.value)
        } else if let point = inside.first(where: { $0.tag == 0x85 }) {
            result = slot.key.derive(peerPoint: point.value)
        } else {
            return [0x6A, 0x80]
        }
        guard let result else { return [0x6A, 0x80] }
        card.operations += 1
        return VirtualCard.answer(TLV.encode(0x7C, TLV.encode(0x82, result)), card: &card)
    }

    /// A success answer, in pieces of 256 bytes with `61xx` when longer.
    private static func answer(_ payload: [UInt8], card: inout State) -> [UInt8] {
        guard payload.count > 256 else { return payload + [0x90, 0x00] }
        card.pendingResponse = Array(payload.dropFirst(256))
        return Array(payload.prefix(256)) + [0x61, UInt8(min(card.pendingResponse.count, 256) & 0xff)]
    }

    static func pad(_ pin: [UInt8]) -> [UInt8] {
        pin.count >= 8 ? pin : pin + [UInt8](repeating: 0xFF, count: 8 - pin.count)
    }

    /// Splits a command body (short or extended lengths) into data and Le; nil when malformed.
    static func parseBody(_ body: [UInt8]) -> (data: [UInt8], le: Int?)? {
        if body.isEmpty { return ([], nil) }
        if body.count == 1 { return ([], body[0] == 0 ? 256 : Int(body[0])) }
        if body[0] == 0 && body.count >= 3 {  // extended
            let first = Int(body[1]) << 8 | Int(body[2])
            if body.count == 3 { return ([], first == 0 ? 65536 : first) }
            guard body.count >= 3 + first else { return nil }
            let data = Array(body[3..<(3 + first)])
            let rest = body[(3 + first)...]
            guard rest.isEmpty || rest.count == 2 else { return nil }
            let le = rest.count == 2 ? Int(rest[rest.startIndex]) << 8 | Int(rest[rest.startIndex + 1]) : nil
            return (data, le.map { $0 == 0 ? 65536 : $0 })
        }
        let lc = Int(body[0])
        guard body.count >= 1 + lc, body.count <= 2 + lc else { return nil }
        let data = Array(body.dropFirst().prefix(lc))
        let rest = body.dropFirst(1 + lc)
        return (data, rest.first.map { $0 == 0 ? 256 : Int($0) })
    }

    /// An ATR `3B 8n 80 01 <historical> TCK` (T=1 offered, historical bytes, checksum).
    static func makeATR(historical: [UInt8]) -> [UInt8] {
        var atr: [UInt8] = [0x3B, 0x80 | UInt8(historical.count), 0x80, 0x01] + historical
        atr.append(atr.dropFirst().reduce(0, ^))
        return atr
    }
}

/// BER-TLV as PIV uses it: one- or two-byte tags, definite lengths up to 0xFFFF.
enum TLV {
    struct Element {
        let tag: UInt32
        let value: [UInt8]
    }

    static func encode(_ tag: UInt32, _ value: [UInt8]) -> [UInt8] {
        let tagBytes = tag > 0xFFFF ? [UInt8(tag >> 16), UInt8((tag >> 8) & 0xff), UInt8(tag & 0xff)]
            : tag > 0xFF ? [UInt8(tag >> 8), UInt8(tag & 0xff)] : [UInt8(tag)]
        return DER.tlv(tag: tagBytes, value)
    }

    /// The elements in `bytes`, stopping at the first malformed one. A request's
    /// tag list (`5C`) holds the requested tag's bytes as its value.
    static func parse(_ bytes: [UInt8]) -> [Element] {
        var elements: [Element] = []
        var i = 0
        while i < bytes.count {
            var tag = UInt32(bytes[i])
            i += 1
            if tag & 0x1F == 0x1F {
                while i < bytes.count {
                    tag = tag << 8 | UInt32(bytes[i])
                    i += 1
                    if bytes[i - 1] & 0x80 == 0 { break }
                }
            }
            guard i < bytes.count else { break }
            var length = Int(bytes[i])
            i += 1
            if length == 0x81 || length == 0x82 {
                let count = length & 0x7F
                guard i + count <= bytes.count else { break }
                length = bytes[i..<(i + count)].reduce(0) { $0 << 8 | Int($1) }
                i += count
            } else if length > 0x80 {
                break
            }
            guard i + length <= bytes.count else { break }
            elements.append(Element(tag: tag, value: Array(bytes[i..<(i + length)])))
            i += length
        }
        return elements
    }
}
