import FoundationEssentials
import Glibc
import SignetCore
import SignetOpenSSL

/// Certificates found in a directory, kept for `directory-cache-hours` so that encrypting to the same people
/// again asks no directory: one file per query under `$XDG_CACHE_HOME/signet/directory` (mode 0600, in a 0700
/// folder), holding where the certificate was found, when, and the certificate (PEM). A cached certificate
/// is judged again (validity, path, revocation) each time it is used.
public struct DirectoryCache: Sendable {
    public let directory: String

    /// The cache in `directory`, by default `$XDG_CACHE_HOME/signet/directory` (`~/.cache/signet/directory`).
    public init(directory: String? = nil) {
        if let directory { self.directory = directory; return }
        let cache = getenv("XDG_CACHE_HOME").map { String(cString: $0) }.flatMap { $0.hasPrefix("/") ? $0 : nil }
            ?? ((getenv("HOME").map { String(cString: $0) } ?? "/") + "/.cache")
        self.directory = cache + "/signet/directory"
    }

    /// One cached finding.
    public struct Entry {
        public var certificate: Certificate
        public var directory: String
        public var dn: String
        public var attribute: String
        public var addresses: [String]
        public var fetched: Date
    }

    private func path(_ query: String) -> String {
        let name = query.lowercased().utf8.map { byte -> String in
            let c = Character(Unicode.Scalar(byte))
            return c.isLetter && byte < 0x80 || c.isNumber && byte < 0x80 || "@.-_".contains(c) ? String(c) : "%" + String(byte, radix: 16)
        }.joined()
        return directory + "/" + String(name.prefix(200))
    }

    /// The finding for `query` when it is younger than `maximumAge` seconds.
    public func load(_ query: String, maximumAge: Double, now: Date) -> Entry? {
        guard let text = FileIO.readText(path(query), limit: 256 << 10) else { return nil }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("-----") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        guard let fetchedText = fields["fetched"], let fetched = Double(fetchedText),
              now.timeIntervalSince1970 - fetched < maximumAge, now.timeIntervalSince1970 >= fetched,
              let pem = text.firstRange(of: "-----BEGIN CERTIFICATE-----").map({ String(text[$0.lowerBound...]) }),
              let certificate = try? CertificateFile.read(Array(pem.utf8)).certificates.first else { return nil }
        return Entry(certificate: certificate, directory: fields["directory"] ?? "?", dn: fields["dn"] ?? "?", attribute: fields["attribute"] ?? "?",
                     addresses: (fields["addresses"] ?? "").split(separator: " ").map(String.init),
                     fetched: Date(timeIntervalSince1970: fetched))
    }

    /// Keeps `candidate` as the finding for `query`. A cache that cannot be written is only slower.
    public func store(_ query: String, candidate: DirectoryCandidate, addresses: [String], now: Date) {
        guard FileIO.makeDirectories(directory, mode: 0o700) else { return }
        let oneLine = { (text: String) in text.filter { $0 != "\n" && $0 != "\r" } }
        let text = "fetched=\(now.timeIntervalSince1970)\ndirectory=\(oneLine(candidate.directory))\ndn=\(oneLine(candidate.dn))\n"
            + "attribute=\(oneLine(candidate.attribute))\naddresses=\(oneLine(addresses.joined(separator: " ")))\n" + candidate.certificate.pem
        _ = FileIO.writeAtomically(path(query), text: text, mode: 0o600)
    }
}
