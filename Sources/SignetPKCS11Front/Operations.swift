import CSignetPKCS11Front
import SignetAgentProtocol
import SignetCore

/// The key checks every operation makes, in the order PKCS#11 2.40 lists their codes.
package enum KeyCheck {
    /// Checks that `key` can carry out `entry` for one of `usages`.
    /// - Throws: `CKR_KEY_HANDLE_INVALID` for an object that is not a key (a certificate, the profile);
    ///   `CKR_KEY_TYPE_INCONSISTENT` for a key of another type than the mechanism's;
    ///   `CKR_KEY_FUNCTION_NOT_PERMITTED` for a public key, or a key whose usages do not allow it;
    ///   `CKR_KEY_SIZE_RANGE` for a key size outside the mechanism's.
    package static func check(_ key: ModuleObject, for entry: MechanismEntry, usages: KeyUsages) throws(ModuleError) {
        guard [CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_SECRET_KEY].contains(key.objectClass) else { throw ModuleError(CKR_KEY_HANDLE_INVALID) }
        switch entry.keyKind {
        case .derivedSecret:
            guard key.secret != nil, key.keyType == nil else { throw ModuleError(CKR_KEY_TYPE_INCONSISTENT) }
            guard [16, 24, 32].contains(key.bits / 8), entry.takes(keyBits: key.bits / 8) else { throw ModuleError(CKR_KEY_SIZE_RANGE) }
        case .rsa, .ec:
            guard key.keyType == (entry.keyKind == .rsa ? .rsa : .ec) else { throw ModuleError(CKR_KEY_TYPE_INCONSISTENT) }
            // A public key has no CKA_SIGN, CKA_DECRYPT or CKA_DERIVE: false, as SoftHSM2 answers.
            guard key.objectClass == CKO_PRIVATE_KEY, !key.usages.isDisjoint(with: usages) else {
                throw ModuleError(CKR_KEY_FUNCTION_NOT_PERMITTED)
            }
            guard entry.takes(keyBits: key.bits) else { throw ModuleError(CKR_KEY_SIZE_RANGE) }
        }
    }
}

/// A signature under way: the mechanism as the agent gets it, and what is hashed here first.
package struct SignOperation {
    package let key: ModuleObject
    package let entry: MechanismEntry
    /// Sent to the agent: `CKM_RSA_PKCS`, `CKM_RSA_PKCS_PSS` or `CKM_ECDSA`.
    package let wire: WireMechanism
    /// Multi-part input so far: hashed as it comes for the hashing mechanisms, else joined (one digest).
    package var digester: Digester?
    package var data: [UInt8] = []
    package var parts = false

    /// The longest input of a mechanism that hashes nothing here: a digest or a DigestInfo is far shorter.
    package static let rawLimit = 1024

    /// Hashed here before signing (nil: the caller passes the digest or DigestInfo).
    package var hash: Hash? { entry.hash }

    /// - Throws: `CKR_MECHANISM_INVALID` for a mechanism the table has not for signing, the key
    ///   checks' codes (`KeyCheck`), `CKR_MECHANISM_PARAM_INVALID` for PSS parameters the module does not take.
    package init(mechanism: CK_MECHANISM, key: ModuleObject) throws(ModuleError) {
        let entry = try Mechanisms.entry(mechanism.mechanism, for: CKF_SIGN)
        try KeyCheck.check(key, for: entry, usages: .sign)
        self.key = key
        self.entry = entry
        switch entry.form {
        case .atToken where entry.type == CKM_RSA_PKCS_PSS: wire = try SignOperation.pss(mechanism, key: key, hashedHere: nil)
        case .hashPSS(let hash): wire = try SignOperation.pss(mechanism, key: key, hashedHere: hash)
        default: wire = WireMechanism(type: UInt64(entry.wire ?? entry.type))
        }
    }

    /// The PSS parameters, checked: the hash named must be the one hashed here, when one is, and the
    /// salt no longer than the modulus.
    private static func pss(_ mechanism: CK_MECHANISM, key: ModuleObject, hashedHere: Hash?) throws(ModuleError) -> WireMechanism {
        guard let parameter = mechanism.pParameter, mechanism.ulParameterLen == CK_ULONG(MemoryLayout<CK_RSA_PKCS_PSS_PARAMS>.size) else {
            throw ModuleError(CKR_MECHANISM_PARAM_INVALID)
        }
        let params = parameter.loadUnaligned(as: CK_RSA_PKCS_PSS_PARAMS.self)
        guard let named = Hash(mechanism: params.hashAlg), hashedHere == nil || hashedHere == named, params.mgf == named.mgf,
              params.sLen <= CK_ULONG(key.signatureLength) else {
            throw ModuleError(CKR_MECHANISM_PARAM_INVALID)
        }
        return WireMechanism(type: UInt64(CKM_RSA_PKCS_PSS), hash: UInt64(params.hashAlg), mgf: UInt64(params.mgf), saltLength: UInt32(params.sLen))
    }

    /// Takes one part of a multi-part signature.
    /// - Throws: `CKR_DATA_LEN_RANGE` when the parts of a mechanism that hashes nothing here pass `rawLimit`.
    package mutating func update(_ part: UnsafeRawBufferPointer) throws(ModuleError) {
        parts = true
        if let hash {
            if digester == nil { digester = Digester(hash) }
            digester!.update(part)
        } else {
            guard part.count <= SignOperation.rawLimit - data.count else { throw ModuleError(CKR_DATA_LEN_RANGE) }
            data += part
        }
    }

    /// Checks the input of a mechanism that hashes nothing here: `input` (one part), or the parts given
    /// so far (nil). It changes nothing, so a length query may make it before the signature.
    /// - Throws: `CKR_DATA_LEN_RANGE` for a raw input longer than the key takes.
    package func check(_ input: UnsafeRawBufferPointer?) throws(ModuleError) {
        guard hash == nil else { return }
        let count = input?.count ?? data.count
        if count > SignOperation.rawLimit { throw ModuleError(CKR_DATA_LEN_RANGE) }
        if wire.type == UInt64(CKM_RSA_PKCS), count > key.signatureLength - 11 { throw ModuleError(CKR_DATA_LEN_RANGE) }
    }

    /// What the agent signs: for `input` (one part), or for the parts given so far (nil). It ends the
    /// hash of the parts, so it is called once, for the signature itself (after `check`).
    package func agentInput(_ input: UnsafeRawBufferPointer?) -> [UInt8] {
        guard let hash else { return input.map { Array($0) } ?? data }
        let digest: [UInt8]
        if let input {
            let digester = Digester(hash)
            digester.update(input)
            digest = digester.finish()
        } else {
            digest = (digester ?? Digester(hash)).finish()
        }
        if case .hashDigestInfo = entry.form { return hash.digestInfoPrefix + digest }
        return digest
    }
}

/// A decryption under way: RSA with a token key (at the agent), or AES key unwrap with a key this
/// module derived (here: NSS unwraps a message's content key on the slot that derived the KEK).
package struct DecryptOperation {
    package enum Kind {
        case rsa(WireMechanism)
        case aesUnwrap(iv: [UInt8])
    }
    package let key: ModuleObject
    package let kind: Kind
    /// A plaintext already computed that did not fit the caller's buffer: the next call takes it.
    package var pending: SharedSecret?

    /// The longest wrapped key taken (RFC 3394: the key and its 8-byte check).
    package static let wrappedLimit = 1024

    /// - Throws: `CKR_MECHANISM_INVALID` for a mechanism the table has not for decryption, the key
    ///   checks' codes (`KeyCheck`), `CKR_MECHANISM_PARAM_INVALID` for OAEP parameters or an IV the module does not take.
    package init(mechanism: CK_MECHANISM, key: ModuleObject) throws(ModuleError) {
        let entry = try Mechanisms.entry(mechanism.mechanism, for: CKF_DECRYPT)
        try KeyCheck.check(key, for: entry, usages: [.decrypt, .unwrap])
        self.key = key
        switch entry.form {
        case .atToken where entry.type == CKM_RSA_PKCS_OAEP:
            guard let parameter = mechanism.pParameter, mechanism.ulParameterLen == CK_ULONG(MemoryLayout<CK_RSA_PKCS_OAEP_PARAMS>.size) else {
                throw ModuleError(CKR_MECHANISM_PARAM_INVALID)
            }
            let params = parameter.loadUnaligned(as: CK_RSA_PKCS_OAEP_PARAMS.self)
            guard Hash(mechanism: params.hashAlg) != nil else { throw ModuleError(CKR_MECHANISM_PARAM_INVALID) }
            // No label: CMS never uses one, and SoftHSM2 and the cards Signet knows refuse it.
            guard params.source == 0 || params.ulSourceDataLen == 0 else { throw ModuleError(CKR_MECHANISM_PARAM_INVALID) }
            kind = .rsa(WireMechanism(type: UInt64(CKM_RSA_PKCS_OAEP), hash: UInt64(params.hashAlg), mgf: UInt64(params.mgf)))
        case .atToken:
            kind = .rsa(WireMechanism(type: UInt64(entry.type)))
        case .aesUnwrap:
            var iv: [UInt8] = []
            if let parameter = mechanism.pParameter, mechanism.ulParameterLen > 0 {
                guard mechanism.ulParameterLen == 8 else { throw ModuleError(CKR_MECHANISM_PARAM_INVALID) }
                iv = Array(UnsafeRawBufferPointer(start: parameter, count: 8))
            }
            kind = .aesUnwrap(iv: iv)
        case .hashDigestInfo, .hashPSS, .hashECDSA, .ecdh:
            throw ModuleError(CKR_MECHANISM_INVALID)  // no such decryption in the table
        }
    }

    /// Checks the ciphertext's length before anything is asked of the agent.
    /// - Throws: `CKR_ENCRYPTED_DATA_LEN_RANGE`: RSA takes exactly the modulus length; RFC 3394 whole
    ///   8-byte blocks, at least three, at most `wrappedLimit` bytes.
    package func check(ciphertextLength length: CK_ULONG) throws(ModuleError) {
        switch kind {
        case .rsa:
            guard length == CK_ULONG(key.signatureLength) else { throw ModuleError(CKR_ENCRYPTED_DATA_LEN_RANGE) }
        case .aesUnwrap:
            guard length >= 24, length % 8 == 0, length <= CK_ULONG(DecryptOperation.wrappedLimit) else {
                throw ModuleError(CKR_ENCRYPTED_DATA_LEN_RANGE)
            }
        }
    }

    /// Upper bound of the plaintext, for a length query.
    package var maximumLength: Int {
        switch kind {
        case .rsa: key.signatureLength
        case .aesUnwrap: DecryptOperation.wrappedLimit
        }
    }
}
