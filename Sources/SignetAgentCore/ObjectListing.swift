import SignetAgentProtocol
import SignetCore
import SignetPKCS11

/// Lists a token's keys and certificates: names, ids, types, sizes and
/// usages only. Private objects appear once the token is unlocked.
enum ObjectListing {
    /// Objects of each class listed at most.
    static let limit = 4096

    /// Every key and certificate on the token (public objects only while it is locked), and with
    /// `certificateValues` each certificate's DER (`values` has one element per entry, empty for keys).
    static func list(_ state: inout TokenState, certificateValues: Bool) throws(PKCS11Error)
        -> (entries: [ObjectEntry], values: [[UInt8]]) {
        let session = try state.openSession()
        var entries: [ObjectEntry] = []
        var certificates: [[UInt8]] = []
        let kinds: [(ObjectClass, ObjectEntry.Kind, String)] = [
            (.privateKey, .privateKey, "private"), (.publicKey, .publicKey, "public"), (.certificate, .certificate, "cert"),
        ]
        for (objectClass, kind, typeName) in kinds {
            for handle in try session.findObjects([Attribute(.objectClass, objectClass)], limit: limit) {
                let values = try session.attributes(handle, [.id, .label, .keyType, .modulus, .ecParams, .sign, .decrypt, .derive,
                                                             .unwrap, .verify, .encrypt, .subject]
                                                            + (certificateValues && kind == .certificate ? [.value] : []))
                let id = values[.id] ?? []
                let label = String(decoding: values[.label] ?? [], as: UTF8.self)
                var keyType: WireKeyType?
                var bits: UInt32 = 0
                switch values[.keyType]?.ckULong.map(KeyType.init(rawValue:)) {
                case .rsa?:
                    keyType = .rsa
                    if let modulus = values[.modulus] { bits = UInt32(modulus.drop { $0 == 0 }.count * 8) }
                case .ec?:
                    keyType = .ec
                    if let parameters = values[.ecParams], let curve = NamedCurve(parametersDER: parameters) { bits = UInt32(curve.bits) }
                default:
                    break
                }
                var usages: KeyUsages = []
                for (attribute, usage) in [(AttributeType.sign, KeyUsages.sign), (.decrypt, .decrypt), (.derive, .derive),
                                           (.unwrap, .unwrap), (.verify, .verify), (.encrypt, .encrypt)] where values[attribute]?.ckBool == true {
                    usages.insert(usage)
                }
                var uri = state.token.uri
                if !id.isEmpty { uri = uri.setting("id", id) }
                if !label.isEmpty { uri = uri.setting("object", Array(label.utf8)) }
                uri = uri.setting("type", Array(typeName.utf8))
                // The public half for keys (RSA private keys carry it; EC ones get it from their public key below).
                var publicKeyInfo: [UInt8] = []
                if kind != .certificate, keyType != nil, let key = try? session.publicKey(handle) { publicKeyInfo = key.subjectPublicKeyInfoDER }
                entries.append(ObjectEntry(uri: uri.description, kind: kind, label: label, id: id, keyType: keyType, bits: bits,
                                           usages: usages, subject: kind == .certificate ? values[.subject] ?? [] : [], publicKeyInfo: publicKeyInfo))
                certificates.append(kind == .certificate ? values[.value] ?? [] : [])
            }
        }
        for index in entries.indices where entries[index].kind == .privateKey && entries[index].publicKeyInfo.isEmpty {
            let entry = entries[index]
            if let match = entries.first(where: { $0.kind == .publicKey && $0.id == entry.id && $0.keyType == entry.keyType && !$0.publicKeyInfo.isEmpty }) {
                entries[index].publicKeyInfo = match.publicKeyInfo
            }
        }
        return (entries, certificates)
    }
}

extension CertificateFields {
    /// The fields of a certificate a client asks to store, or the error for it.
    static func checked(_ der: [UInt8]) throws(AgentFailure) -> CertificateFields {
        func fail(_ why: String) -> AgentFailure { AgentFailure(.dataInvalid, "This is not a DER X.509 certificate (\(why)).") }
        guard der.count <= AgentProtocol.maximumFrame else { throw fail("too large") }
        do throws(DER.ParseError) {
            return try CertificateFields(der: der)
        } catch {
            throw fail(error == .trailingBytes ? "bytes after the certificate" : error.description)
        }
    }
}

/// Creates a private key object (and its public key) from imported components:
/// sensitive, never extractable, stored on the token (`Templates.imported…`).
enum KeyImport {
    static func create(_ key: ImportedKey, id: [UInt8], label: String, session: Session) throws(PKCS11Error) {
        func component(_ name: ImportedKey.Component) -> SharedSecret? { key.components.first { $0.0 == name }?.1 }
        func publicBytes(_ name: ImportedKey.Component) -> [UInt8] {
            component(name)?.use { $0.withUnsafeBytes { Array($0) } } ?? []
        }
        switch key.keyType {
        case .rsa:
            let needed: [(ImportedKey.Component, AttributeType)] = [
                (.privateExponent, .privateExponent), (.prime1, .prime1), (.prime2, .prime2),
                (.exponent1, .exponent1), (.exponent2, .exponent2), (.coefficient, .coefficient),
            ]
            let modulus = publicBytes(.modulus), exponent = publicBytes(.publicExponent)
            guard !modulus.isEmpty, !exponent.isEmpty else { throw .malformed("an RSA key needs its modulus and public exponent") }
            var secrets: [(AttributeType, SharedSecret)] = []
            for (name, attribute) in needed {
                guard let value = component(name) else { throw .malformed("an RSA key needs all its CRT components") }
                secrets.append((attribute, value))
            }
            let privateKey = try session.createObject(
                Templates.importedRSAPrivateKey(modulus: modulus, publicExponent: exponent, id: id, label: label), secrets: secrets)
            try bothOrNeither(privateKey, session) { () throws(PKCS11Error) in
                try session.createObject(Templates.importedRSAPublicKey(modulus: modulus, publicExponent: exponent, id: id, label: label))
            }
        case .ec:
            let parameters = publicBytes(.ecParameters), point = publicBytes(.ecPoint)
            guard let scalar = component(.ecPrivateValue), NamedCurve(parametersDER: parameters) != nil, !point.isEmpty else {
                throw .malformed("an EC key needs a known curve, its private value and its public point")
            }
            let privateKey = try session.createObject(Templates.importedECPrivateKey(parameters: parameters, id: id, label: label),
                                                      secrets: [(.value, scalar)])
            try bothOrNeither(privateKey, session) { () throws(PKCS11Error) in
                try session.createObject(Templates.importedECPublicKey(parameters: parameters, point: point, id: id, label: label))
            }
        }
    }

    /// Runs `createPublic`; when it fails, removes the private key already written so no half key pair stays.
    private static func bothOrNeither(_ privateKey: ObjectHandle, _ session: Session,
                                      _ createPublic: () throws(PKCS11Error) -> ObjectHandle) throws(PKCS11Error) {
        do throws(PKCS11Error) {
            _ = try createPublic()
        } catch {
            try? session.destroyObject(privateKey)
            throw error
        }
    }
}
