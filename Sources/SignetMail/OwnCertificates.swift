import FoundationEssentials
import SignetCore
import SignetOpenSSL

/// Your own certificates as last seen on your tokens, with their keys' URIs, kept in
/// `$XDG_DATA_HOME/signet/own.json` so that signing can start (and ask you to present
/// the token) and encrypting to yourself works while the token is not inserted.
public struct OwnCertificates: Codable {
    public struct Entry: Codable {
        public var pem: String
        public var keyURI: String
        public var publicKeyInfo: [UInt8]
        /// Read in the old form (rewritten in the new one by `remember`).
        public var readAsNumbers = false

        public init(pem: String, keyURI: String, publicKeyInfo: [UInt8]) {
            self.pem = pem
            self.keyURI = keyURI
            self.publicKeyInfo = publicKeyInfo
        }

        private enum CodingKeys: String, CodingKey { case pem, keyURI, publicKeyInfo }

        // The public key is stored as base64 (a JSON array of numbers, as Signet 0.2.0 wrote, is read too):
        // this file is read on every `signet sign`, and decoding hundreds of numbers took about 0.3 ms.
        public init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            pem = try container.decode(String.self, forKey: .pem)
            keyURI = try container.decode(String.self, forKey: .keyURI)
            if let text = try? container.decode(String.self, forKey: .publicKeyInfo) {
                guard let bytes = Data(base64Encoded: text) else {
                    throw DecodingError.dataCorruptedError(forKey: .publicKeyInfo, in: container, debugDescription: "not base64")
                }
                publicKeyInfo = Array(bytes)
            } else {
                publicKeyInfo = try container.decode([UInt8].self, forKey: .publicKeyInfo)
                readAsNumbers = true
            }
        }

        public func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(pem, forKey: .pem)
            try container.encode(keyURI, forKey: .keyURI)
            try container.encode(Data(publicKeyInfo).base64EncodedString(), forKey: .publicKeyInfo)
        }
    }
    public var entries: [Entry] = []

    public init(entries: [Entry] = []) { self.entries = entries }

    public static func load(from directory: String = SignetPaths.current.data) -> OwnCertificates {
        guard let bytes = FileIO.readBytes(directory + "/own.json", limit: 4 << 20),
              let decoded = try? JSONDecoder().decode(OwnCertificates.self, from: Data(bytes)) else { return OwnCertificates() }
        return decoded
    }

    /// Remembers the certificates with keys in `inventory` (adding to what was known) in `directory`'s
    /// own.json. Beside it, own.index lists their SHA-256 fingerprints one per line, so that this (run on
    /// every `signet sign`) sees nothing is new without decoding the JSON, which took 0.4 ms.
    public static func remember(_ inventory: Inventory, in directory: String = SignetPaths.current.data) {
        let path = directory + "/own.json", indexPath = directory + "/own.index"
        let keyed = inventory.certificates.filter { $0.keyReference != nil }
        if FileIO.exists(path), let index = FileIO.readText(indexPath, limit: 1 << 20) {
            let known = index.split(separator: "\n")
            if keyed.allSatisfy({ installed in known.contains { $0 == installed.certificate.sha256 } }) { return }
        }
        var own = load(from: directory)
        var changed = own.entries.contains(where: \.readAsNumbers)
        for installed in keyed {
            guard let (uri, spki) = installed.keyReference, !own.entries.contains(where: { $0.pem == installed.certificate.pem }) else { continue }
            own.entries.append(Entry(pem: installed.certificate.pem, keyURI: uri, publicKeyInfo: spki))
            changed = true
        }
        FileIO.makeDirectories(directory)
        if changed {
            guard let data = try? JSONEncoder().encode(own), FileIO.writeAtomically(path, bytes: Array(data), mode: 0o600) else { return }
        }
        // Written after own.json, so it never names a certificate own.json lacks.
        FileIO.writeAtomically(indexPath, text: own.certificates.map { $0.0.sha256 + "\n" }.joined(), mode: 0o600)
    }

    /// The remembered certificates as installed entries (without a token).
    public var certificates: [(Certificate, String, [UInt8])] {
        entries.compactMap { entry in
            guard let certificate = try? CertificateFile.read(Array(entry.pem.utf8)).certificates.first else { return nil }
            return (certificate, entry.keyURI, entry.publicKeyInfo)
        }
    }
}
