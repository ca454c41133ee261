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
