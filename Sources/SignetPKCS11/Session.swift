import CP11Kit
import SignetCore

/// A handle to an object on a token, valid within its session's login state.
public struct ObjectHandle: RawRepresentable, Hashable, Sendable {
    public let rawValue: UInt
    public init(rawValue: UInt) { self.rawValue = rawValue }
}

/// Who logs in: the user (access code) or the security officer (SO code / PUK).
public enum UserType: Sendable {
    case user, securityOfficer
    var raw: CK_USER_TYPE { self == .user ? CK_USER_TYPE(CKU_USER) : CK_USER_TYPE(CKU_SO) }
}

/// A PKCS#11 session with one token.
///
/// Not for concurrent use: one caller at a time (the agent's `TokenWorker`, one thread queue per token,
/// guarantees it). Every call blocks on the token; run it off Swift's
/// cooperative pool. The session is closed when the object is released.
public final class Session: @unchecked Sendable {
    public let module: PKCS11Module
    public let slotID: CK_SLOT_ID
    public let handle: CK_SESSION_HANDLE
    private let functions: UnsafeMutablePointer<CK_FUNCTION_LIST>

    /// Opens a session (`C_OpenSession`).
    /// - Throws: `PKCS11Error.call`.
    init(module: PKCS11Module, slotID: CK_SLOT_ID, readWrite: Bool) throws(PKCS11Error) {
        self.module = module
        self.slotID = slotID
        functions = module.functions
        guard let open = functions.pointee.C_OpenSession else { throw .functionMissing("C_OpenSession") }
        var flags = CK_FLAGS(CKF_SERIAL_SESSION)
        if readWrite { flags |= CK_FLAGS(CKF_RW_SESSION) }
        var session: CK_SESSION_HANDLE = 0
        try check(open(slotID, flags, nil, nil, &session), "C_OpenSession")
        handle = session
    }

    deinit {
        _ = functions.pointee.C_CloseSession?(handle)
    }

    /// Logs in with `code` (`C_Login`). The code's bytes go to the token exactly as given.
    /// - Throws: `PKCS11Error.call` with `CKR_PIN_INCORRECT`, `CKR_PIN_LOCKED`,
    ///   `CKR_PIN_LEN_RANGE`, `CKR_USER_ALREADY_LOGGED_IN`, …
    public func login(_ user: UserType = .user, code: borrowing SecretBytes) throws(PKCS11Error) {
        guard let login = functions.pointee.C_Login else { throw .functionMissing("C_Login") }
        let rv = code.withUnsafeBytes { bytes in
            login(handle, user.raw, UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)), CK_ULONG(bytes.count))
        }
        try check(rv, "C_Login")
    }

    /// Logs in through the reader's PIN pad (`CKF_PROTECTED_AUTHENTICATION_PATH`).
    public func loginProtectedPath(_ user: UserType = .user) throws(PKCS11Error) {
        guard let login = functions.pointee.C_Login else { throw .functionMissing("C_Login") }
        try check(login(handle, user.raw, nil, 0), "C_Login")
    }

    /// Logs out (`C_Logout`); logging out a session that is not logged in is not an error.
    public func logout() throws(PKCS11Error) {
        guard let logout = functions.pointee.C_Logout else { throw .functionMissing("C_Logout") }
        let rv = logout(handle)
        if rv == CKR_USER_NOT_LOGGED_IN { return }
        try check(rv, "C_Logout")
    }

    /// Sets the user code after an SO login (`C_InitPIN`), which also unblocks it.
    public func initPIN(_ code: borrowing SecretBytes) throws(PKCS11Error) {
        guard let initPIN = functions.pointee.C_InitPIN else { throw .functionMissing("C_InitPIN") }
        let rv = code.withUnsafeBytes { bytes in
            initPIN(handle, UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)), CK_ULONG(bytes.count))
        }
        try check(rv, "C_InitPIN")
    }

    /// Changes the logged-in user's code (`C_SetPIN`).
    public func setPIN(old: borrowing SecretBytes, new: borrowing SecretBytes) throws(PKCS11Error) {
        guard let setPIN = functions.pointee.C_SetPIN else { throw .functionMissing("C_SetPIN") }
        let rv = old.withUnsafeBytes { oldBytes in
            new.withUnsafeBytes { newBytes in
                setPIN(handle,
                       UnsafeMutablePointer(mutating: oldBytes.baseAddress?.assumingMemoryBound(to: UInt8.self)), CK_ULONG(oldBytes.count),
                       UnsafeMutablePointer(mutating: newBytes.baseAddress?.assumingMemoryBound(to: UInt8.self)), CK_ULONG(newBytes.count))
            }
        }
        try check(rv, "C_SetPIN")
    }

    /// Whether the session is logged in as user or SO (`C_GetSessionInfo`).
    public func isLoggedIn() throws(PKCS11Error) -> Bool {
        guard let getInfo = functions.pointee.C_GetSessionInfo else { throw .functionMissing("C_GetSessionInfo") }
        var info = CK_SESSION_INFO()
        try check(getInfo(handle, &info), "C_GetSessionInfo")
        return [CKS_RO_USER_FUNCTIONS, CKS_RW_USER_FUNCTIONS, CKS_RW_SO_FUNCTIONS].contains(UInt(info.state))
    }

    /// Objects matching every attribute in `template` (`C_FindObjects*`).
    /// - Throws: `PKCS11Error.call`.
    public func findObjects(_ template: [Attribute], limit: Int = 4096) throws(PKCS11Error) -> [ObjectHandle] {
        guard let findInit = functions.pointee.C_FindObjectsInit,
              let find = functions.pointee.C_FindObjects,
              let findFinal = functions.pointee.C_FindObjectsFinal else { throw .functionMissing("C_FindObjects") }
        try withTemplate(template) { (pointer, count) throws(PKCS11Error) in
            try check(findInit(handle, pointer, count), "C_FindObjectsInit")
        }
        defer { _ = findFinal(handle) }
        var result: [ObjectHandle] = []
        var batch = [CK_OBJECT_HANDLE](repeating: 0, count: 64)
        while result.count < limit {
            var found: CK_ULONG = 0
            try check(find(handle, &batch, CK_ULONG(batch.count), &found), "C_FindObjects")
            if found == 0 { break }
            result += batch.prefix(Int(found)).map { ObjectHandle(rawValue: UInt($0)) }
        }
        return result
    }

    /// Reads attributes of `object` (`C_GetAttributeValue`, two calls).
    /// Attributes the object lacks or keeps secret are absent from the result.
    /// - Throws: `PKCS11Error.call` (`CKR_OBJECT_HANDLE_INVALID`, …).
    public func attributes(_ object: ObjectHandle, _ types: [AttributeType]) throws(PKCS11Error) -> [AttributeType: [UInt8]] {
        guard let getAttributes = functions.pointee.C_GetAttributeValue else { throw .functionMissing("C_GetAttributeValue") }
        var template = types.map { CK_ATTRIBUTE(type: CK_ATTRIBUTE_TYPE($0.rawValue), pValue: nil, ulValueLen: 0) }
        let sizeRV = getAttributes(handle, CK_OBJECT_HANDLE(object.rawValue), &template, CK_ULONG(template.count))
        // CKR_ATTRIBUTE_SENSITIVE and CKR_ATTRIBUTE_TYPE_INVALID still fill the other lengths.
        guard sizeRV == CKR_OK || sizeRV == CKR_ATTRIBUTE_SENSITIVE || sizeRV == CKR_ATTRIBUTE_TYPE_INVALID else {
            try check(sizeRV, "C_GetAttributeValue")
            return [:]
        }
        let unavailable = CP11Kit_unavailableInformation()
        let readable = template.indices.filter { template[$0].ulValueLen != unavailable }
        if readable.isEmpty { return [:] }
        let total = readable.reduce(0) { $0 + Int(template[$1].ulValueLen) }
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(total, 1), alignment: 8)
        defer { storage.deallocate() }
        var second: [CK_ATTRIBUTE] = []
        var offset = 0
        for index in readable {
            second.append(CK_ATTRIBUTE(type: template[index].type, pValue: storage.baseAddress! + offset, ulValueLen: template[index].ulValueLen))
            offset += Int(template[index].ulValueLen)
        }
        let rv = getAttributes(handle, CK_OBJECT_HANDLE(object.rawValue), &second, CK_ULONG(second.count))
        guard rv == CKR_OK || rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID else {
            try check(rv, "C_GetAttributeValue")
            return [:]
        }
        var result: [AttributeType: [UInt8]] = [:]
        for attribute in second where attribute.ulValueLen != unavailable {
            let bytes = UnsafeRawBufferPointer(start: attribute.pValue, count: Int(attribute.ulValueLen))
            result[AttributeType(rawValue: UInt(attribute.type))] = Array(bytes)
        }
        return result
    }

    /// Signs `data` with `key` (`C_SignInit` + `C_Sign`).
    ///
    /// `data` is what the mechanism takes: a DigestInfo for `CKM_RSA_PKCS`, a
    /// digest for `CKM_ECDSA` and `CKM_RSA_PKCS_PSS`, the message for
    /// `CKM_SHA256_RSA_PKCS`. ECDSA signatures come back as r‖s.
    /// `expectedLength` sizes the output buffer (the modulus or 2×field size)
    /// so the usual case takes one `C_Sign` call; a short guess costs a second.
    /// - Throws: `PKCS11Error.call` (`CKR_USER_NOT_LOGGED_IN`, `CKR_MECHANISM_INVALID`,
    ///   `CKR_KEY_FUNCTION_NOT_PERMITTED`, `CKR_DEVICE_REMOVED`, …).
    public func sign(_ mechanism: Mechanism, key: ObjectHandle, data: [UInt8], expectedLength: Int = 512) throws(PKCS11Error) -> [UInt8] {
        guard let signInit = functions.pointee.C_SignInit, let sign = functions.pointee.C_Sign else {
            throw .functionMissing("C_Sign")
        }
        try mechanism.withUnsafeMechanism { (pointer) throws(PKCS11Error) in
            try check(signInit(handle, pointer, CK_OBJECT_HANDLE(key.rawValue)), "C_SignInit")
        }
        return try runTwoCall("C_Sign", data: data, guess: expectedLength) { input, inputLength, output, outputLength in
            sign(handle, input, inputLength, output, outputLength)
        }
    }

    /// Decrypts `ciphertext` with `key` (`C_DecryptInit` + `C_Decrypt`).
    /// For CMS key transport: `CKM_RSA_PKCS`, `CKM_RSA_PKCS_OAEP`, or `CKM_RSA_X_509` (raw).
    /// - Throws: `PKCS11Error.call` (`CKR_ENCRYPTED_DATA_INVALID`, …).
    public func decrypt(_ mechanism: Mechanism, key: ObjectHandle, ciphertext: [UInt8]) throws(PKCS11Error) -> [UInt8] {
        guard let decryptInit = functions.pointee.C_DecryptInit, let decrypt = functions.pointee.C_Decrypt else {
            throw .functionMissing("C_Decrypt")
        }
        try mechanism.withUnsafeMechanism { (pointer) throws(PKCS11Error) in
            try check(decryptInit(handle, pointer, CK_OBJECT_HANDLE(key.rawValue)), "C_DecryptInit")
        }
        return try runTwoCall("C_Decrypt", data: ciphertext, guess: max(ciphertext.count, 16)) { input, inputLength, output, outputLength in
            decrypt(handle, input, inputLength, output, outputLength)
        }
    }

    /// ECDH (`CKM_ECDH1_DERIVE`): derives the shared secret with the peer's
    /// public point and returns its bytes. The secret lives on the token only
    /// as a session object for the duration of this call.
    /// - Parameter peerPoint: the peer's uncompressed point `04‖X‖Y`.
    /// - Throws: `PKCS11Error.call`.
    public func deriveECDH(key: ObjectHandle, peerPoint: [UInt8], kdf: ECKDF = .null, sharedData: [UInt8] = [], length: Int? = nil) throws(PKCS11Error) -> [UInt8] {
        guard let derive = functions.pointee.C_DeriveKey else { throw .functionMissing("C_DeriveKey") }
        var template = [
            Attribute(.objectClass, .secretKey), Attribute(.keyType, .genericSecret),
            Attribute(.token, false), Attribute(.sensitive, false), Attribute(.extractable, true),
        ]
        if let length { template.append(Attribute(.valueLength, ulong: UInt(length))) }
        let mechanism = Mechanism(.ecdh1Derive, .ecdh1(kdf: kdf, sharedData: sharedData, publicData: peerPoint))
        var derived: CK_OBJECT_HANDLE = 0
        try mechanism.withUnsafeMechanism { (pointer) throws(PKCS11Error) in
            try withTemplate(template) { (attributes, count) throws(PKCS11Error) in
                try check(derive(handle, pointer, CK_OBJECT_HANDLE(key.rawValue), attributes, count, &derived), "C_DeriveKey")
            }
        }
        let object = ObjectHandle(rawValue: UInt(derived))
        defer { try? destroyObject(object) }
        guard let value = try attributes(object, [.value])[.value] else { throw .malformed("derived secret has no value") }
        return value
    }

    /// Generates a key pair on the token (`C_GenerateKeyPair`).
    /// - Throws: `PKCS11Error.call` (`CKR_TEMPLATE_INCONSISTENT`, `CKR_KEY_SIZE_RANGE`, …).
    public func generateKeyPair(_ mechanism: Mechanism, publicTemplate: [Attribute], privateTemplate: [Attribute]) throws(PKCS11Error) -> (publicKey: ObjectHandle, privateKey: ObjectHandle) {
        guard let generate = functions.pointee.C_GenerateKeyPair else { throw .functionMissing("C_GenerateKeyPair") }
        var publicKey: CK_OBJECT_HANDLE = 0
        var privateKey: CK_OBJECT_HANDLE = 0
        try mechanism.withUnsafeMechanism { (pointer) throws(PKCS11Error) in
            try withTemplate(publicTemplate) { (pub, pubCount) throws(PKCS11Error) in
                try withTemplate(privateTemplate) { (priv, privCount) throws(PKCS11Error) in
                    try check(generate(handle, pointer, pub, pubCount, priv, privCount, &publicKey, &privateKey), "C_GenerateKeyPair")
                }
            }
        }
        return (ObjectHandle(rawValue: UInt(publicKey)), ObjectHandle(rawValue: UInt(privateKey)))
    }

    /// Creates an object (`C_CreateObject`). `secrets` are attribute values
    /// (private key components) that reach the module from zeroing buffers only.
    public func createObject(_ template: [Attribute], secrets: [(AttributeType, SharedSecret)] = []) throws(PKCS11Error) -> ObjectHandle {
        guard let create = functions.pointee.C_CreateObject else { throw .functionMissing("C_CreateObject") }
        var object: CK_OBJECT_HANDLE = 0
        try withTemplate(template, secrets: secrets) { (pointer, count) throws(PKCS11Error) in
            try check(create(handle, pointer, count, &object), "C_CreateObject")
        }
        return ObjectHandle(rawValue: UInt(object))
    }

    /// Destroys an object (`C_DestroyObject`).
    public func destroyObject(_ object: ObjectHandle) throws(PKCS11Error) {
        guard let destroy = functions.pointee.C_DestroyObject else { throw .functionMissing("C_DestroyObject") }
        try check(destroy(handle, CK_OBJECT_HANDLE(object.rawValue)), "C_DestroyObject")
    }

    /// Sets attributes of an existing object (`C_SetAttributeValue`).
    public func setAttributes(_ object: ObjectHandle, _ template: [Attribute]) throws(PKCS11Error) {
        guard let set = functions.pointee.C_SetAttributeValue else { throw .functionMissing("C_SetAttributeValue") }
        try withTemplate(template) { (pointer, count) throws(PKCS11Error) in
            try check(set(handle, CK_OBJECT_HANDLE(object.rawValue), pointer, count), "C_SetAttributeValue")
        }
    }

    /// The PKCS#11 single-part output convention: call with a buffer of
    /// `guess` bytes; on `CKR_BUFFER_TOO_SMALL` the module has written the
    /// needed length and keeps the operation active, so call again.
    private func runTwoCall(
        _ name: String, data: [UInt8], guess: Int,
        _ call: (UnsafeMutablePointer<UInt8>?, CK_ULONG, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<CK_ULONG>) -> CK_RV
    ) throws(PKCS11Error) -> [UInt8] {
        var input = data
        var output = [UInt8](repeating: 0, count: max(guess, 1))
        var length = CK_ULONG(output.count)
        var rv = input.withUnsafeMutableBufferPointer { inputBuffer in
            output.withUnsafeMutableBufferPointer { call(inputBuffer.baseAddress, CK_ULONG(inputBuffer.count), $0.baseAddress, &length) }
        }
        if rv == CKR_BUFFER_TOO_SMALL {
            guard length > 0, length <= 1 << 20 else { throw .malformed("\(name) asked for \(length) bytes") }
            output = [UInt8](repeating: 0, count: Int(length))
            rv = input.withUnsafeMutableBufferPointer { inputBuffer in
                output.withUnsafeMutableBufferPointer { call(inputBuffer.baseAddress, CK_ULONG(inputBuffer.count), $0.baseAddress, &length) }
            }
        }
        try check(rv, name)
        guard Int(length) <= output.count else { throw .malformed("\(name) reported \(length) bytes for a \(output.count)-byte buffer") }
        output.removeLast(output.count - Int(length))
        return output
    }
}
