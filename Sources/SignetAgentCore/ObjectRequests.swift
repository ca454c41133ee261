import SignetAgentProtocol
import SignetCore
import SignetPKCS11

extension AuditAction {
    static let keyGenerated = AuditAction(rawValue: "key-generated")
    static let certificateStored = AuditAction(rawValue: "certificate-stored")
    static let objectDeleted = AuditAction(rawValue: "object-deleted")
    static let keyImported = AuditAction(rawValue: "key-imported")
}

/// Keys and certificates on a token: list and read them (not recorded), and the
/// writes (generate, store, delete, import), which need the token unlocked.
/// The templates are `SignetPKCS11.Templates`; no request here returns key material.
enum ObjectRequests: RequestGroup {
    static func route(_ request: AgentRequest) -> Route? {
        switch request {
        case .listObjectPage(let token, let start, let certificateValues):
            Route { (context) throws(AgentFailure) in
                let (entries, values) = try listing(token, certificateValues: certificateValues, context)
                return .objectPage(ObjectPage.slice(entries, values: values, from: Int(start)))
            }
        case .getCertificate(let object):
            Route(key: object) { (context) throws(AgentFailure) in
                let uri = try context.parse(object)
                let worker = try context.registry.resolve(uri)
                return .certificate(der: try worker.run(use: false) { (state) throws(PKCS11Error) -> [UInt8] in
                    try TokenWorker.withObject(uri, defaultType: "cert", in: &state) { (handle, state) throws(PKCS11Error) -> [UInt8] in
                        guard let value = try state.openSession().attributes(handle, [.value])[.value] else { throw .objectNotFound(object) }
                        return value
                    }
                })
            }
        case .generateKeyPair(let token, let keyType, let bits, let curveName, let id, let label):
            Route(.keyGenerated, token: token) { (context) throws(AgentFailure) in
                let spec = try keySpec(keyType, bits: bits, curve: curveName)
                guard !id.isEmpty, id.count <= 64 else { throw AgentFailure(.invalidArgument, "A key id must be 1 to 64 bytes.") }
                let worker = try context.resolve(token)
                let agent = context.agent
                let (publicURI, privateURI, spki) = try worker.run { (state) throws(PKCS11Error) -> (String, String, [UInt8]) in
                    try agent.requireUnlocked(&state)
                    let session = try state.openSession()
                    try refuseTakenID(id, session, "generate")
                    let (publicKey, _) = try session.generateKeyPair(spec, id: id, label: label)
                    state.contentChanged()
                    let spki = try session.publicKey(publicKey).subjectPublicKeyInfoDER
                    return (objectURI(state, id: id, label: label, type: "public"), objectURI(state, id: id, label: label, type: "private"), spki)
                }
                context.record(.keyGenerated, token: worker.uriText, key: privateURI)
                return .keyPair(publicKey: publicURI, privateKey: privateURI, subjectPublicKeyInfo: spki)
            }
        case .storeCertificate(let token, let der, let id, let label):
            Route(.certificateStored, token: token) { (context) throws(AgentFailure) in
                let names = try CertificateFields.checked(der)
                let worker = try context.resolve(token)
                let agent = context.agent
                let uri = try worker.run { (state) throws(PKCS11Error) -> String in
                    try agent.requireUnlocked(&state)
                    _ = try state.openSession().createObject(Templates.certificate(der: der, id: id, label: label, subject: names.subject,
                                                                                    issuer: names.issuer, serialNumber: names.serialNumber))
                    state.contentChanged()
                    return objectURI(state, id: id, label: label, type: "cert")
                }
                context.record(.certificateStored, token: worker.uriText, key: uri)
                return .stored(object: uri)
            }
        case .deleteObject(let object):
            Route(.objectDeleted, key: object) { (context) throws(AgentFailure) in
                let uri = try context.parse(object)
                guard uri.text("type") != nil, uri.value("id") != nil || uri.value("object") != nil else {
                    throw AgentFailure(.invalidArgument, "Name the object to delete with type= and id= or object= (see `signet keys`).")
                }
                let worker = try context.registry.resolve(uri)
                let agent = context.agent
                try worker.run { (state) throws(PKCS11Error) in
                    try agent.requireUnlocked(&state)
                    try TokenWorker.withObject(uri, defaultType: "cert", in: &state) { (handle, state) throws(PKCS11Error) in
                        try state.openSession().destroyObject(handle)
                    }
                    state.contentChanged()
                }
                context.record(.objectDeleted, token: worker.uriText, key: object)
                return .ok(message: "Deleted.")
            }
        case .importKey(let token, let key, let id, let label):
            Route(.keyImported, token: token) { (context) throws(AgentFailure) in
                let worker = try context.resolve(token)
                let agent = context.agent
                let uri = try worker.run { (state) throws(PKCS11Error) -> String in
                    try agent.requireUnlocked(&state)
                    let session = try state.openSession()
                    try refuseTakenID(id, session, "import")
                    try KeyImport.create(key, id: id, label: label, session: session)
                    state.contentChanged()
                    return objectURI(state, id: id, label: label, type: "private")
                }
                context.record(.keyImported, token: worker.uriText, key: uri)
                return .stored(object: uri)
            }
        default:
            nil
        }
    }

    /// The key pair a generate request asks for.
    /// - Throws: `.invalidArgument` for an RSA size outside 2048–8192 or an unknown curve.
    private static func keySpec(_ keyType: WireKeyType, bits: UInt32, curve: String) throws(AgentFailure) -> KeySpec {
        switch keyType {
        case .rsa:
            guard bits >= UInt32(KeySpec.minimumRSABits), bits <= 8192 else {
                throw AgentFailure(.invalidArgument, "RSA keys must be 2048 to 8192 bits; \(bits) was asked.")
            }
            return .rsa(bits: Int(bits))
        case .ec:
            guard let named = NamedCurve(rawValue: curve) else {
                throw AgentFailure(.invalidArgument, "Unknown curve \"\(curve)\"; use P-256, P-384 or P-521.")
            }
            return .ec(named)
        }
    }

    /// Refuses an id already used on the token (a second key under one id would make certificates ambiguous).
    private static func refuseTakenID(_ id: [UInt8], _ session: Session, _ operation: String) throws(PKCS11Error) {
        if !(try session.findObjects([Attribute(.id, bytes: id)], limit: 1)).isEmpty {
            throw .call(operation: "\(operation): an object with this id already exists", code: .templateInconsistent)
        }
    }

    /// The URI of an object just written: the token's URI with its id, label and type.
    private static func objectURI(_ state: TokenState, id: [UInt8], label: String, type: String) -> String {
        state.token.uri.setting("id", id).setting("object", Array(label.utf8)).setting("type", Array(type.utf8)).description
    }
}

extension ObjectRequests {
    /// Every object on `token`, or on every present token. With no token known yet, one just inserted
    /// may be binding: the readers and modules are rescanned rather than "none" answered.
    static func listing(_ token: String?, certificateValues: Bool, _ context: RequestContext) throws(AgentFailure)
        -> (entries: [ObjectEntry], values: [[UInt8]]) {
        let registry = context.registry
        let workers = try token.map { (text) throws(AgentFailure) in [try context.resolve(text)] }
            ?? (registry.presentWorkers.isEmpty ? registry.refresh() : registry.presentWorkers)
        var entries: [ObjectEntry] = [], values: [[UInt8]] = []
        for worker in workers {
            let listed = try worker.run(use: false) { (state) throws(PKCS11Error) in
                try ObjectListing.list(&state, certificateValues: certificateValues)
            }
            entries += listed.entries
            values += listed.values
        }
        return (entries, values)
    }
}
