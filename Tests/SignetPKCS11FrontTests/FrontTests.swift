import CSignetPKCS11Front
import SignetAgentProtocol
import SignetCore
import SignetPKCS11Front
import Testing

/// The module's logic in process, without the C ABI: vectors from the standards, the token flags for
/// every lockout state, slot ids, and the mechanism table both ways.
@Suite("PKCS#11 front-end library")
struct FrontTests {
    // MARK: RFC 3394 AES key unwrap

    /// RFC 3394 section 4, all six vectors (4.1 to 4.6): KEK, key data, ciphertext.
    static let rfc3394: [(kek: String, key: String, wrapped: String)] = [
        ("000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF", "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"),
        ("000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF",
         "96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D"),
        ("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF",
         "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7"),
        ("000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF0001020304050607",
         "031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2"),
        ("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF0001020304050607",
         "A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1"),
        ("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
         "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
         "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"),
    ]

    @Test("RFC 3394 key unwrap gives each of the RFC's six key data from its ciphertext", arguments: 0..<6)
    func rfc3394Vectors(index: Int) throws {
        let vector = FrontTests.rfc3394[index]
        let kek = SharedSecret(SecretBytes(copying: hex(vector.kek)))
        let key = try KeyUnwrap.unwrap(kek: kek, wrapped: hex(vector.wrapped), iv: [])
        #expect(key.use { $0.withUnsafeBytes { Array($0) } } == hex(vector.key))
        // The default IV written out (A6A6A6A6A6A6A6A6, RFC 3394 2.2.3.1) gives the same.
        let again = try KeyUnwrap.unwrap(kek: kek, wrapped: hex(vector.wrapped), iv: Array(repeating: 0xA6, count: 8))
        #expect(again.use { $0.withUnsafeBytes { Array($0) } } == hex(vector.key))
    }

    @Test("A ciphertext changed in one bit fails its integrity check: CKR_ENCRYPTED_DATA_INVALID, no key")
    func rfc3394Tampered() {
        var wrapped = hex(FrontTests.rfc3394[0].wrapped)
        wrapped[5] ^= 1
        let kek = SharedSecret(SecretBytes(copying: hex(FrontTests.rfc3394[0].kek)))
        #expect(throws: ModuleError(CKR_ENCRYPTED_DATA_INVALID)) { try KeyUnwrap.unwrap(kek: kek, wrapped: wrapped, iv: []) }
        #expect(throws: ModuleError(CKR_ENCRYPTED_DATA_LEN_RANGE)) { try KeyUnwrap.unwrap(kek: kek, wrapped: Array(wrapped.prefix(20)), iv: []) }
    }

    // MARK: ANSI X9.63 KDF

    /// NIST CAVP's ANSI X9.63 KDF vectors (SP 800-135 component test, `ansx963_2001.rsp`, COUNT = 0 of
    /// each section shown); the same values are in pyca/cryptography's X963KDF tests, and
    /// pyca/cryptography 48 derives the same from them (checked when they were written here).
    static let x963: [(hash: CK_ULONG, z: String, sharedInfo: String, key: String)] = [
        (CKD_SHA1_KDF, "1c7d7b5f0597b03d06a018466ed1a93e30ed4b04dc64ccdd", "", "bf71dffd8f4d99223936beb46fee8ccc"),
        (CKD_SHA256_KDF, "96c05619d56c328ab95fe84b18264b08725b85e33fd34f08", "", "443024c3dae66b95e6f5670601558f71"),
        (CKD_SHA256_KDF, "22518b10e70f2a3f243810ae3254139efbee04aa57c7af7d", "75eef81aa3041e33b80971203d2c0c52",
         "c498af77161cc59f2962b9a713e2b215152d139766ce34a776df11866a69bf2e52a13d9c7c6fc878c50c5ea0bc7b00e0da2447cfd874f6cf92f30d0097111485"
            + "500c90c3af8b487872d04685d14c8d1dc8d7fa08beb0ce0ababc11f0bd496269142d43525a78e5bc79a17f59676a5706dc54d54d4d1f0bd7e386128ec26afc21"),
    ]

    @Test("The X9.63 KDF derives the CAVP key data, over one hash block and over several", arguments: 0..<3)
    func x963Vectors(index: Int) throws {
        let vector = FrontTests.x963[index]
        let hash = try #require(X963.hash(forKDF: vector.hash))
        let expected = hex(vector.key)
        #expect(X963.derive(hex(vector.z), hash: hash, sharedInfo: hex(vector.sharedInfo), length: expected.count) == expected)
    }

    @Test("Each CKD_SHA*_KDF names its hash; CKD_NULL and unknown KDFs name none")
    func kdfHashes() {
        #expect(X963.hash(forKDF: CKD_SHA1_KDF) == .sha1 && X963.hash(forKDF: CKD_SHA224_KDF) == .sha224)
        #expect(X963.hash(forKDF: CKD_SHA256_KDF) == .sha256 && X963.hash(forKDF: CKD_SHA384_KDF) == .sha384)
        #expect(X963.hash(forKDF: CKD_SHA512_KDF) == .sha512)
        #expect(X963.hash(forKDF: CKD_NULL) == nil && X963.hash(forKDF: 0x1234) == nil)
    }

    // MARK: Token flags

    static func token(failures: UInt32 = 0, triesLeft: UInt32 = 3, lockedSeconds: UInt32? = nil, card: CardCounter = .notReported,
                      words: String = "not reported") -> TokenEntry {
        TokenEntry(uri: "pkcs11:token=T", label: "T", manufacturer: "M", model: "X", serial: "1", software: false, unlocked: false,
                   failures: failures, triesLeft: triesLeft, lockedSeconds: lockedSeconds, tokenCounter: words, ledgerDamage: nil,
                   cardCounter: card)
    }

    static let base = CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED | CKF_LOGIN_REQUIRED | CKF_PROTECTED_AUTHENTICATION_PATH
    static let pinFlags = CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED

    /// Every lockout state, Signet's and the card's, with the PIN flags it must show. The card's words
    /// are what the agent says for people ("1 tries left" for a PC/SC card's 63C1): never read.
    static let lockoutStates: [(String, TokenEntry, CK_FLAGS)] = [
        ("no wrong code, the card silent", token(), 0),
        ("no wrong code, the card with 3 tries", token(card: .ok(triesLeft: 3), words: "3 tries left"), 0),
        ("one wrong code at Signet", token(failures: 1, triesLeft: 2), CKF_USER_PIN_COUNT_LOW),
        ("Signet's last try", token(failures: 2, triesLeft: 1), CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY),
        ("Signet's 15-minute lock", token(failures: 3, triesLeft: 0, lockedSeconds: 900), CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_LOCKED),
        ("the card counts a wrong code", token(card: .countLow, words: "a wrong code was entered recently"), CKF_USER_PIN_COUNT_LOW),
        ("the card's final try (PKCS#11 flags)", token(card: .finalTry, words: "final try"), CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY),
        ("the card's final try (a PC/SC card's 63C1)", token(card: .finalTry, words: "1 tries left"),
         CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY),
        ("the card blocked", token(card: .blocked, words: "blocked"), CKF_USER_PIN_LOCKED),
        ("the card blocked (a PC/SC card's 63C0)", token(card: .blocked, words: "0 tries left"), CKF_USER_PIN_LOCKED),
        ("Signet's lock and the card blocked", token(failures: 3, triesLeft: 0, lockedSeconds: 10, card: .blocked, words: "blocked"),
         CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_LOCKED),
        ("words that say final try over a counter that says ok", token(card: .ok(triesLeft: 2), words: "final try"), 0),
    ]

    @Test("Every lockout state shows its PIN flags, from the typed counter and never the words", arguments: 0..<12)
    func lockoutFlags(index: Int) {
        let (name, entry, expected) = FrontTests.lockoutStates[index]
        let flags = Slots.tokenFlags(entry)
        #expect(flags & FrontTests.base == FrontTests.base, "\(name)")
        #expect(flags & FrontTests.pinFlags == expected, "\(name)")
    }

    @Test("The token is a protected authentication path only where the agent can ask the host's user (issue 28, item 6)")
    func protectedPathOnlyWithAPlace() {
        let entry = FrontTests.token(failures: 3, triesLeft: 0, lockedSeconds: 900)
        #expect(Slots.tokenFlags(entry, hostCanPrompt: true) & CKF_PROTECTED_AUTHENTICATION_PATH != 0)
        let nowhere = Slots.tokenFlags(entry, hostCanPrompt: false)
        #expect(nowhere & CKF_PROTECTED_AUTHENTICATION_PATH == 0)
        #expect(nowhere & (FrontTests.base & ~CKF_PROTECTED_AUTHENTICATION_PATH) == FrontTests.base & ~CKF_PROTECTED_AUTHENTICATION_PATH)
        #expect(nowhere & FrontTests.pinFlags == CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_LOCKED)
    }

    // MARK: Slot ids

    @Test("A token's slot id is the same in every process: pinned for one token, whatever its label")
    func slotIDStable() {
        var entry = FrontTests.token()
        entry.manufacturer = "SoftHSM project"; entry.serial = "abc"; entry.model = "SoftHSM v2"
        // FNV-1a of "SoftHSM project\0abc\0SoftHSM v2", low 31 bits, odd (computed apart, in Python, when pinned).
        #expect(Slots.slotID(for: entry) { _ in false } == 1_737_690_467)
        entry.label = "renamed"; entry.uri = "pkcs11:token=renamed"
        #expect(Slots.slotID(for: entry) { _ in false } == 1_737_690_467)
        var other = entry
        other.serial = "abd"
        #expect(Slots.slotID(for: other) { _ in false } != 1_737_690_467)
        #expect(Slots.sameToken(entry, FrontTests.token()) == false && Slots.sameToken(entry, entry))
    }

    @Test("A slot id another token holds moves to the next free odd id below 2^31")
    func slotIDCollision() {
        let entry = FrontTests.token()
        let first = Slots.slotID(for: entry) { _ in false }
        let taken: Set<CK_SLOT_ID> = [first, (first + 2) & 0x7FFF_FFFF]
        let moved = Slots.slotID(for: entry) { taken.contains($0) }
        #expect(moved == (first + 4) & 0x7FFF_FFFF)
        for id in [first, moved] { #expect(id & 1 == 1 && id < 0x8000_0000) }
    }

    // MARK: Mechanism table

    static let functions: [CK_FLAGS] = [CKF_SIGN, CKF_DECRYPT, CKF_DERIVE, CKF_ENCRYPT, CKF_VERIFY, CKF_DIGEST, CKF_WRAP, CKF_UNWRAP, CKF_GENERATE]

    @Test("Every advertised mechanism is accepted for exactly the functions its flags name")
    func advertisedAccepted() throws {
        #expect(Mechanisms.table.count == Set(Mechanisms.table.map(\.type)).count, "one entry per type")
        for entry in Mechanisms.table {
            for function in FrontTests.functions {
                if entry.flags & function != 0 {
                    #expect(try Mechanisms.entry(entry.type, for: function).type == entry.type)
                } else {
                    #expect(throws: ModuleError(CKR_MECHANISM_INVALID)) { try Mechanisms.entry(entry.type, for: function) }
                }
            }
            #expect(entry.minKeySize <= entry.maxKeySize)
            #expect(entry.flags & (CKF_SIGN | CKF_DECRYPT | CKF_DERIVE) != 0, "every entry is usable for something")
        }
    }

    @Test("Nothing the table does not advertise is accepted: SHA-1 and SHA-224 signing, and every other type up to 0x2000")
    func nothingElseAccepted() {
        let advertised = Set(Mechanisms.table.map(\.type))
        let named: [CK_MECHANISM_TYPE] = [CKM_SHA1_RSA_PKCS, CKM_SHA224_RSA_PKCS, CKM_SHA1_RSA_PKCS_PSS, CKM_SHA224_RSA_PKCS_PSS,
                                          CKM_ECDSA_SHA1, CKM_ECDSA_SHA224, CKM_RSA_X_509, CKM_SHA256, CKM_AES_CBC]
        for type in named + (0..<0x2000).map(CK_MECHANISM_TYPE.init) where !advertised.contains(type) {
            #expect(Mechanisms.entry(type) == nil)
            for function in [CKF_SIGN, CKF_DECRYPT, CKF_DERIVE] {
                #expect(throws: ModuleError(CKR_MECHANISM_INVALID)) { try Mechanisms.entry(type, for: function) }
            }
        }
    }

    @Test("The hashing mechanisms send the right mechanism to the agent and hash with the named hash")
    func wireForms() throws {
        #expect(try Mechanisms.entry(CKM_SHA384_RSA_PKCS, for: CKF_SIGN).wire == CKM_RSA_PKCS)
        #expect(try Mechanisms.entry(CKM_SHA384_RSA_PKCS, for: CKF_SIGN).hash == .sha384)
        #expect(try Mechanisms.entry(CKM_SHA512_RSA_PKCS_PSS, for: CKF_SIGN).wire == CKM_RSA_PKCS_PSS)
        #expect(try Mechanisms.entry(CKM_ECDSA_SHA256, for: CKF_SIGN).wire == CKM_ECDSA)
        #expect(try Mechanisms.entry(CKM_ECDH1_DERIVE, for: CKF_DERIVE).wire == CKM_ECDH1_DERIVE)
        #expect(try Mechanisms.entry(CKM_AES_KEY_WRAP, for: CKF_DECRYPT).wire == nil)
        #expect(try Mechanisms.entry(CKM_RSA_PKCS, for: CKF_SIGN).hash == nil)
    }

    // MARK: Error mapping

    @Test("Agent errors map to the PKCS#11 codes the module documents; anything unknown is CKR_DEVICE_ERROR")
    func errorMapping() {
        #expect(ErrorMapping.rv(.notUnlocked) == CKR_USER_NOT_LOGGED_IN)
        #expect(ErrorMapping.rv(.tokenAbsent) == CKR_DEVICE_REMOVED && ErrorMapping.rv(.tokenRemoved) == CKR_DEVICE_REMOVED)
        #expect(ErrorMapping.rv(.objectNotFound) == CKR_KEY_HANDLE_INVALID)
        #expect(ErrorMapping.rv(.mechanismInvalid) == CKR_MECHANISM_INVALID)
        #expect(ErrorMapping.rv(.keyUsageNotPermitted) == CKR_KEY_FUNCTION_NOT_PERMITTED)
        #expect(ErrorMapping.rv(.deniedByPolicy) == CKR_FUNCTION_REJECTED)
        #expect(ErrorMapping.rv(.invalidArgument) == CKR_ARGUMENTS_BAD)
        #expect(ErrorMapping.rv(.internalError) == CKR_DEVICE_ERROR)
    }
}
