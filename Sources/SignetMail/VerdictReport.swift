import FoundationEssentials
import SignetCore
import SignetOpenSSL

/// What `signet verify` and `signet decrypt` say about a message: the verdicts `MessageOpener` found,
/// in words (the CLI prints them to standard error, escaped: the names, addresses and reasons in them come
/// from the message) and as JSON (`verify --json`). Nothing here decides anything.
public enum VerdictReport {
    /// The report's lines. When every signature is good and trusted it starts with "Verification successful",
    /// as OpenSSL's does: mutt and neomutt call a signature good only when the verify command exits 0 and that
    /// is the first line of its standard error.
    public static func lines(_ opener: MessageOpener) -> [String] {
        var lines: [String] = []
        if opener.status == .success && opener.signedLayers > 0 { lines.append("Verification successful") }
        for layer in opener.layers { lines += self.lines(layer) }
        return lines
    }

    static func lines(_ layer: LayerVerdict) -> [String] {
        let depth = layer.depth
        switch layer {
        case .signed(_, let signed):
            if signed.signers.isEmpty { return ["Layer \(depth): the signed message has no signers."] }
            var lines: [String] = []
            for (index, signer) in signed.signers.enumerated() {
                let name = signed.signers.count == 1 ? "Layer \(depth)" : "Layer \(depth), signer \(index + 1) of \(signed.signers.count)"
                lines += self.lines(signer, name: name, aroundEncryption: signed.aroundEncryption)
            }
            return lines
        case .encrypted(_, let encrypted):
            return self.lines(encrypted, depth: depth)
        case .unreadable(_, let reason):
            switch reason {
            case .truncated:
                return ["Layer \(depth): the message is truncated: it ends before its structure does. Ask the sender to send it again."]
            case .detachedSignatureWithoutContent:
                return ["Layer \(depth): this signature is detached; give the signed content with --content (and the signature with --signature)."]
            case .compressed:
                return ["Layer \(depth): compressed data (RFC 3274), which Signet cannot open (its OpenSSL has no zlib). "
                        + "Ask the sender to send it uncompressed."]
            case .otherContentType(let type):
                return ["Layer \(depth): not a readable S/MIME message (CMS \(type) content, neither signed nor encrypted)."]
            case .notCMS(let detail):
                return ["Layer \(depth): not a readable S/MIME message (\(detail))."]
            }
        case .unchecked(_, let size):
            return ["Layer \(depth): an S/MIME layer of \(size >> 20) MiB, larger than the \(MessageOpener.maximumSize >> 20) MiB "
                    + "Signet checks; its signature was NOT checked. It is written as it is."]
        case .tooDeep:
            return ["More than \(MessageOpener.maximumDepth) nested S/MIME layers; stopped."]
        }
    }

    /// Who a signer is: the certificate's name and address, else how the message names it.
    static func name(_ signer: SignerVerdict) -> String {
        if let certificate = signer.certificate {
            return certificate.label + (certificate.emails.first.map { " <\($0)>" } ?? "")
        }
        return signer.identifier.map { "the signer with \($0)" } ?? "a signer the message does not name"
    }

    static func lines(_ signer: SignerVerdict, name layer: String, aroundEncryption: Bool) -> [String] {
        let who = name(signer)
        let algorithms = "\(signer.digest) with \(signer.signatureAlgorithm)"
        if aroundEncryption && signer.signature != .good {
            let why = switch signer.signature {
            case .badSignature(let reason): "it does not verify: \(reason)"
            case .badContentDigest: "the digest it signs is not the encrypted form's"
            case .unsupportedAlgorithm(let algorithm): "Signet cannot verify \(algorithm)"
            case .signerCertificateMissing: "the signer's certificate is not in the message"
            case .malformed(let reason): "it is malformed: \(reason)"
            case .good: ""
            }
            return ["\(layer): warning: the signature of \(who) around the encrypted message is not good (\(why)); "
                    + "it covers only the encrypted form, so it is ignored."]
        }
        switch signer.signature {
        case .badSignature(let reason):
            return ["\(layer): BAD signature by \(who): it does not verify with the signer's key (\(reason)). "
                    + "What was signed was changed after signing, or the signature is damaged."]
        case .badContentDigest:
            return ["\(layer): BAD signature by \(who): the signature itself verifies, but the content's \(signer.digest) digest "
                    + "is not the one signed: the content was changed after signing."]
        case .unsupportedAlgorithm(let algorithm):
            return ["\(layer): cannot check the signature of \(who): Signet cannot verify \(algorithm). "
                    + "This says nothing about whether the message was changed."]
        case .signerCertificateMissing:
            return ["\(layer): cannot check the signature of \(who): the message does not include the signer's certificate "
                    + "and none you have matches. Ask the sender to include their certificate."]
        case .malformed(let reason):
            return ["\(layer): the signature information of \(who) is malformed (\(reason)); it cannot be checked."]
        case .good:
            break
        }
        var lines = ["\(layer): signed by \(who): " + (signer.status == .success ? "good signature" : "signature matches, but see below")]
        if let time = signer.signingTime { lines.append("  signed at:  \(Dates.show(time))") }
        lines.append("  algorithms: \(algorithms)")
        if signer.sha1Refused { lines.append("  REFUSED:    signed with SHA-1, which is broken (--allow-sha1 accepts it).") }
        lines += signer.crlNotes.map { "  CRL:        \($0)" }
        if let note = signer.revocationNote { lines.append("  revocation: \(note)") }
        let checkTime = signer.checkedAt.map(Dates.show) ?? "now"
        switch signer.chain {
        case .trusted?:
            lines.append("  signer:     trusted at \(checkTime) (\(signer.path.map(\.label).joined(separator: " → ")))")
        case .revoked(let detail)?:
            lines.append("  REVOKED:    \(detail). The sender's CA withdrew this certificate: do not rely on this message.")
        case .revocationUnknown(let detail)?:
            lines.append("  NOT TRUSTED: revocation could not be checked: \(detail). "
                         + "Give the CA's current CRL with --crl FILE, or check the network for --fetch-crl.")
        case .expired(let detail)?, .notYetValid(let detail)?, .untrusted(let detail)?:
            lines.append("  NOT TRUSTED at \(checkTime): \(detail). "
                         + "If you trust the sender's CA, add its root with `signet trust add ROOT.pem`.")
        case nil:
            break
        }
        switch signer.from {
        case .matches(let address)?: lines.append("  From:       \(address) matches the certificate")
        case .mismatch(let address, let addresses)?:
            lines.append("  MISMATCH:   From: \(address) is not an address of this certificate (\(addresses.joined(separator: ", ")))")
        case nil: break
        }
        if let date = signer.dateMismatch { lines.append("  MISMATCH:   Date: \(Dates.show(date)) is more than an hour from the signing time") }
        if aroundEncryption { lines.append("  (this signature covers only the encrypted form; it does not decide the result)") }
        return lines
    }

    static func lines(_ layer: EncryptedLayer, depth: Int) -> [String] {
        var lines: [String] = []
        let cipher = layer.cipher?.name ?? "an unknown cipher"
        if let legacy = layer.cipher, legacy.legacy {
            lines.append("Warning: layer \(depth) is encrypted with \(legacy.name), an obsolete cipher; ask the sender to use AES.")
        }
        switch layer.outcome {
        case .decrypted(let certificate):
            lines.append("Layer \(depth): encrypted (\(cipher)) to \(certificate.subject); decrypted.")
        case .notForYou:
            let names = layer.recipients.isEmpty ? "no one: it names no recipients" : layer.recipients.map(\.description).joined(separator: "; ")
            var line = "Layer \(depth): the message is not addressed to any certificate on your tokens (it is for: \(names))."
            if layer.recipients.contains(where: { $0.kind == .keyTransport || $0.kind == .keyAgreement }) {
                line += " If the token holding that certificate is not inserted, insert it; `signet cert list` shows yours."
            } else {
                line += " Signet opens only messages encrypted to a certificate (RSA or ECDH); ask the sender to encrypt to yours."
            }
            lines.append(line)
        case .unsupportedCipher(let name):
            lines.append("Layer \(depth): encrypted with \(name), a content cipher Signet cannot decrypt; the token was not used. "
                         + "Ask the sender to use AES-GCM or AES-CBC.")
        case .damagedKey(let certificate, let detail):
            lines.append("Layer \(depth): the message's encrypted key for \(certificate.subject) is damaged: the token refused it "
                         + "(\(detail)) but decrypts a test value with the same key. Ask the sender to send the message again.")
        case .damagedContent(let certificate, let detail):
            lines.append("Layer \(depth): the token recovered the key for \(certificate.subject), but the content does not decrypt with it: "
                         + "\(detail); it was changed or damaged on the way. Ask the sender to send the message again.")
        case .truncated:
            lines.append("Layer \(depth): the encrypted message is truncated: it ends before its content does. Ask the sender to send it again.")
        case .malformed(let detail):
            lines.append("Layer \(depth): not a readable S/MIME encrypted message (\(detail)).")
        }
        return lines
    }

    /// The verdicts as JSON objects: one per signer of each signed layer, one per other layer.
    public static func json(_ layers: [LayerVerdict]) -> [[String: String]] {
        var objects: [[String: String]] = []
        for layer in layers {
            let base = ["layer": "\(layer.depth)", "status": "\(layer.status.rawValue)"]
            switch layer {
            case .signed(_, let signed):
                for signer in signed.signers {
                    var object = base.merging(["kind": "signed", "digest": signer.digest, "signature": signer.signatureAlgorithm,
                                               "result": result(signer.signature)]) { $1 }
                    object["status"] = "\(signer.status.rawValue)"
                    if signed.aroundEncryption { object["aroundEncryption"] = "yes" }
                    if let certificate = signer.certificate { object["signer"] = certificate.subject }
                    if let identifier = signer.identifier { object["signerIdentifier"] = identifier.description }
                    if let time = signer.signingTime { object["signingTime"] = Dates.iso(time) }
                    if case .unsupportedAlgorithm(let name) = signer.signature { object["algorithm"] = name }
                    if signer.sha1Refused { object["sha1"] = "refused" }
                    if let note = signer.revocationNote { object["revocation"] = note }
                    switch signer.chain {
                    case .trusted?: object["trust"] = "trusted"
                    case .revoked(let detail)?: object["trust"] = "revoked: \(detail)"
                    case .revocationUnknown(let detail)?: object["trust"] = "revocation unknown: \(detail)"
                    case .expired(let detail)?, .notYetValid(let detail)?, .untrusted(let detail)?: object["trust"] = "untrusted: \(detail)"
                    case nil: break
                    }
                    objects.append(object)
                }
            case .encrypted(_, let encrypted):
                var object = base.merging(["kind": "encrypted", "cipher": encrypted.cipher?.name ?? "unknown",
                                           "recipients": encrypted.recipients.map(\.description).joined(separator: "; ")]) { $1 }
                switch encrypted.outcome {
                case .decrypted(let certificate): object["result"] = "decrypted"; object["recipient"] = certificate.subject
                case .notForYou: object["result"] = "not-for-you"
                case .unsupportedCipher: object["result"] = "unsupported-cipher"
                case .damagedKey, .damagedContent: object["result"] = "damaged"
                case .truncated: object["result"] = "truncated"
                case .malformed: object["result"] = "malformed"
                }
                objects.append(object)
            case .unreadable(_, let reason):
                let result = switch reason {
                case .truncated: "truncated"
                case .detachedSignatureWithoutContent: "detached-without-content"
                case .compressed: "compressed"
                case .otherContentType, .notCMS: "malformed"
                }
                objects.append(base.merging(["result": result]) { $1 })
            case .unchecked:
                objects.append(base.merging(["result": "unchecked"]) { $1 })
            case .tooDeep:
                objects.append(base.merging(["result": "too deeply nested"]) { $1 })
            }
        }
        return objects
    }

    private static func result(_ outcome: SignedMessage.SignatureOutcome) -> String {
        switch outcome {
        case .good: "good"
        case .badSignature: "bad-signature"
        case .badContentDigest: "bad-content-digest"
        case .unsupportedAlgorithm: "unsupported-algorithm"
        case .signerCertificateMissing: "signer-certificate-missing"
        case .malformed: "malformed"
        }
    }
}
