import COpenSSL
import CSignetCrypto
import SignetAgentClient
import SignetAgentProtocol
import SignetCore

/// A private key on a token, as an OpenSSL `EVP_PKEY`: the public half is
/// real; every private operation (sign, decrypt, ECDH) becomes a request to
/// signet-agent. The key never leaves the token and this process never sees it.
public final class AgentKey {
    /// The private key's PKCS#11 URI.
    public let uri: String
    /// DER SubjectPublicKeyInfo of the key.
    public let subjectPublicKeyInfo: [UInt8]
    /// The OpenSSL key (owned).
    let pkey: OpaquePointer
    private let delegate: Delegate

    /// The agent's answer when the last private operation failed (OpenSSL only says "failed").
    public var lastFailure: AgentClientError? { delegate.failure }

    /// Wraps the key at `uri` whose public key is `subjectPublicKeyInfo`.
    /// - Parameters:
    ///   - onNotice: called with "present your token" and similar messages while a request waits.
    ///   - onLocked: called when the agent answers that the token is locked (a card just
    ///     presented is); returns whether it unlocked the token, and then the operation is
    ///     tried once more. Nil: the "locked" answer is the result.
    /// - Throws: `OpenSSLError` when the public key is not an RSA or EC SubjectPublicKeyInfo.
    public init(client: AgentClient, uri: String, subjectPublicKeyInfo: [UInt8], onNotice: @escaping (String) -> Void = { Console.error($0) },
                onLocked: (() -> Bool)? = nil) throws {
        self.uri = uri
        self.subjectPublicKeyInfo = subjectPublicKeyInfo
        let delegate = Delegate(client: client, uri: uri, onNotice: onNotice, onLocked: onLocked)
        self.delegate = delegate
        let context = Unmanaged.passUnretained(delegate).toOpaque()
        guard let key = subjectPublicKeyInfo.withUnsafeBufferPointer({
            CSignetCrypto_delegatingKey($0.baseAddress, $0.count, agentKeyTrampoline, context)
        }) else { throw OpenSSLError("The key's public half is not an RSA or EC public key") }
        pkey = key
    }

    deinit { EVP_PKEY_free(pkey) }

    /// Whether this is an RSA key (else EC).
    public var isRSA: Bool { EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA }

    /// The agent error behind an OpenSSL failure, or the OpenSSL error itself.
    public func failure(_ operation: String) -> Error {
        if let failure = delegate.failure { return failure }
        return OpenSSLError(operation)
    }

    /// Whether the token still performs this key's private operation, on a value made here
    /// with the public key: after a failed decryption, it tells a damaged message (the token
    /// decrypts the probe) from a failing token (it does not). One token operation; the probe
    /// value is random and wiped.
    public func tokenDecryptsProbe() -> Bool {
        guard let publicKey = subjectPublicKeyInfo.withUnsafeBufferPointer({ buffer -> OpaquePointer? in
            var pointer = buffer.baseAddress
            return d2i_PUBKEY(nil, &pointer, buffer.count)
        }) else { return false }
        defer { EVP_PKEY_free(publicKey) }
        return isRSA ? rsaProbe(publicKey) : ecdhProbe(publicKey)
    }

    private func rsaProbe(_ publicKey: OpaquePointer) -> Bool {
        var value = [UInt8](repeating: 0, count: 32)
        defer { value.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        guard RAND_bytes(&value, Int32(value.count)) == 1, let context = EVP_PKEY_CTX_new(publicKey, nil) else { return false }
        defer { EVP_PKEY_CTX_free(context) }
        guard EVP_PKEY_encrypt_init(context) == 1, EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PADDING) == 1 else { return false }
        var length = 0
        guard EVP_PKEY_encrypt(context, nil, &length, value, value.count) == 1 else { return false }
        var ciphertext = [UInt8](repeating: 0, count: length)
        guard EVP_PKEY_encrypt(context, &ciphertext, &length, value, value.count) == 1 else { return false }
        let request = AgentRequest.decrypt(key: uri, mechanism: WireMechanism(type: Delegate.rsaPKCS), ciphertext: Array(ciphertext.prefix(length)))
        guard case .plaintext(var plaintext)? = try? delegate.client.call(request) else { return false }
        defer { plaintext.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        return plaintext == value
    }

    private func ecdhProbe(_ publicKey: OpaquePointer) -> Bool {
        guard let generator = EVP_PKEY_CTX_new(publicKey, nil) else { return false }
        defer { EVP_PKEY_CTX_free(generator) }
        var ephemeral: OpaquePointer?
        guard EVP_PKEY_keygen_init(generator) == 1, EVP_PKEY_keygen(generator, &ephemeral) == 1, let ephemeral else { return false }
        defer { EVP_PKEY_free(ephemeral) }
        var point: UnsafeMutablePointer<UInt8>?
        let pointLength = EVP_PKEY_get1_encoded_public_key(ephemeral, &point)
        guard pointLength > 0, let point else { return false }
        let peerPoint = Array(UnsafeBufferPointer(start: point, count: pointLength))
        COpenSSL_free(point)
        guard let deriver = EVP_PKEY_CTX_new(ephemeral, nil) else { return false }
        defer { EVP_PKEY_CTX_free(deriver) }
        var length = 0
        guard EVP_PKEY_derive_init(deriver) == 1, EVP_PKEY_derive_set_peer(deriver, publicKey) == 1,
              EVP_PKEY_derive(deriver, nil, &length) == 1 else { return false }
        var expected = [UInt8](repeating: 0, count: length)
        defer { expected.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        guard EVP_PKEY_derive(deriver, &expected, &length) == 1 else { return false }
        let request = AgentRequest.derive(key: uri, kdf: Delegate.kdfNull, sharedData: [], peerPoint: peerPoint)
        guard case .derived(var secret)? = try? delegate.client.call(request) else { return false }
        defer { secret.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        return secret == Array(expected.prefix(length))
    }

    final class Delegate {
        let client: AgentClient
        let uri: String
        let onNotice: (String) -> Void
        let onLocked: (() -> Bool)?
        var failure: AgentClientError?

        init(client: AgentClient, uri: String, onNotice: @escaping (String) -> Void, onLocked: (() -> Bool)?) {
            self.client = client; self.uri = uri; self.onNotice = onNotice; self.onLocked = onLocked
        }

        // CKM_* numbers (PKCS#11 v2.40): the protocol speaks them; this layer knows no token internals.
        static let rsaPKCS: UInt64 = 0x1, rsaX509: UInt64 = 0x3, ecdsa: UInt64 = 0x1041, kdfNull: UInt64 = 0x1

        func perform(_ operation: Int32, _ input: [UInt8]) -> [UInt8]? {
            let request: AgentRequest
            switch CSignetCrypto_Operation(rawValue: UInt32(operation)) {
            case CSignetCrypto_rsaPKCS1Sign: request = .sign(key: uri, mechanism: WireMechanism(type: Self.rsaPKCS), data: input)
            case CSignetCrypto_rsaRawSign: request = .sign(key: uri, mechanism: WireMechanism(type: Self.rsaX509), data: input)
            case CSignetCrypto_rsaPKCS1Decrypt: request = .decrypt(key: uri, mechanism: WireMechanism(type: Self.rsaPKCS), ciphertext: input)
            case CSignetCrypto_rsaRawDecrypt: request = .decrypt(key: uri, mechanism: WireMechanism(type: Self.rsaX509), ciphertext: input)
            case CSignetCrypto_ecdsaSign: request = .sign(key: uri, mechanism: WireMechanism(type: Self.ecdsa), data: input)
            case CSignetCrypto_ecdhDerive: request = .derive(key: uri, kdf: Self.kdfNull, sharedData: [], peerPoint: input)
            default: return nil
            }
            var mayUnlock = onLocked != nil
            while true {
                do throws(AgentClientError) {
                    return try call(request)
                } catch {
                    failure = error
                    guard error.code == .notUnlocked, mayUnlock, let onLocked else { return nil }
                    mayUnlock = false
                    guard onLocked() else { return nil }
                }
            }
        }

        private func call(_ request: AgentRequest) throws(AgentClientError) -> [UInt8]? {
            switch try client.call(request, onNotice: { [onNotice] _, message in onNotice(message) }) {
            case .signature(let bytes), .plaintext(let bytes), .derived(let bytes):
                failure = nil
                return bytes
            default:
                failure = .protocolViolation("no signature, plaintext or secret in the answer")
                return nil
            }
        }
    }
}

/// The C callback: finds the delegate and copies its answer into OpenSSL's buffer.
private let agentKeyTrampoline: CSignetCrypto_OperationCallback = { context, operation, input, inputLength, output, outputLength in
    guard let context, let input, let output, let outputLength else { return 0 }
    let delegate = Unmanaged<AgentKey.Delegate>.fromOpaque(context).takeUnretainedValue()
    guard var answer = delegate.perform(operation, Array(UnsafeBufferPointer(start: input, count: inputLength))) else { return 0 }
    defer { answer.withUnsafeMutableBytes { SecretBytes.wipe($0) } }  // a decrypted content key is secret
    guard answer.count <= outputLength.pointee else { return 0 }
    answer.withUnsafeBytes { output.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: $0.count) }
    outputLength.pointee = answer.count
    return 1
}
