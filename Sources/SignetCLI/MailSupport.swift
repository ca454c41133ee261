import FoundationEssentials
import Glibc
import SignetAgentClient
import SignetAgentProtocol
import SignetCore
import SignetOpenSSL

/// Exit statuses of the mail commands (`sign`, `verify`, `encrypt`, `decrypt`), one meaning each.
enum MailExit {
    /// Not an S/MIME or CMS message, or damaged beyond reading.
    static let malformed: Int32 = 10
    /// Encrypted, but to none of the certificates on your tokens.
    static let notForYou: Int32 = 11
    /// Addressed to you, but the message is damaged (a token failure is not: that exits 5, 6 or 7).
    static let damaged: Int32 = 12
    /// A signature does not match the content.
    static let badSignature: Int32 = 13
    /// The signature matches, but the signer is not trusted, expired, not yet valid or revoked.
    static let untrusted: Int32 = 14
    /// An algorithm Signet refuses (SHA-1 signatures) or does not know.
    static let unsupported: Int32 = 15
    /// The signature is good and trusted, but the message's From: or Date: disagrees with it.
    static let headerMismatch: Int32 = 16

    /// The more serious of two outcomes (0 is the least).
    static func worse(_ a: Int32, _ b: Int32) -> Int32 {
        let order: [Int32] = [0, headerMismatch, untrusted, unsupported, badSignature, damaged, notForYou, malformed]
        return (order.firstIndex(of: a) ?? 99) >= (order.firstIndex(of: b) ?? 99) ? a : b
    }
}

/// Where a mail command reads: `--in FILE` or standard input.
enum MailInput {
    /// Opens the input for streaming; the caller closes what is not 0.
    static func open(_ path: String?) throws -> Int32 {
        guard let path else { return 0 }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CLIError(description: "Cannot read \(path): \(String(cString: strerror(errno))).").reported() }
        return fd
    }

    /// The whole input when `prefix` has been read from `fd` already, up to `limit` bytes.
    static func readRest(_ fd: Int32, prefix: [UInt8], limit: Int, name: String?) throws -> [UInt8] {
        let tooLarge = CLIError(description: "\(name ?? "The message") is larger than \(limit >> 20) MiB, more than Signet opens.",
                                exitCode: MailExit.malformed)
        var info = stat()
        if fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size > limit { throw tooLarge.reported() }
        var bytes = prefix
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while bytes.count <= limit {
            let got = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else { throw CLIError(description: "Reading the message failed: \(String(cString: strerror(errno))).").reported() }
            if got == 0 { return bytes }
            bytes += chunk[..<got]
        }
        throw tooLarge.reported()
    }

    /// Reads the whole input, up to `limit` bytes (messages that are parsed in memory).
    static func read(_ path: String?, limit: Int) throws -> [UInt8] {
        let fd = try open(path)
        defer { if fd != 0 { close(fd) } }
        return try readRest(fd, prefix: [], limit: limit, name: path)
    }
}

/// Where a mail command writes, so that a failure leaves nothing behind: `-o FILE` is
/// written to a temporary file renamed into place at the end; standard output is streamed.
final class MailOutput {
    let fd: Int32
    private let temporary: String?
    private let destination: String?
    private var done = false

    init(_ path: String?, mode: mode_t) throws {
        destination = path
        if let path {
            let temporary = path + ".signet-\(getpid()).tmp"
            let fd = Glibc.open(temporary, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            guard fd >= 0 else { throw CLIError(description: "Cannot write \(path): \(String(cString: strerror(errno))).").reported() }
            self.fd = fd
            self.temporary = temporary
        } else {
            fd = 1
            temporary = nil
        }
    }

    /// Makes the output visible: renames the file into place.
    func commit() throws {
        done = true
        guard let temporary, let destination else { return }
        guard fsync(fd) == 0, close(fd) == 0, rename(temporary, destination) == 0 else {
            unlink(temporary)
            throw CLIError(description: "Could not write \(destination).").reported()
        }
        FileIO.syncDirectory(of: destination)
    }

    /// Throws away what was written to a file.
    func discard() {
        guard !done else { return }
        done = true
        if let temporary { close(fd); unlink(temporary) }
    }

    deinit { discard() }
}

/// Your own certificates as last seen on your tokens, with their keys' URIs, kept in
/// `$XDG_DATA_HOME/signet/own.json` so that signing can start (and ask you to present
/// the token) and encrypting to yourself works while the token is not inserted.
struct OwnCertificates: Codable {
    struct Entry: Codable {
        var pem: String
        var keyURI: String
        var publicKeyInfo: [UInt8]
        /// Read in the old form (rewritten in the new one by `remember`).
        var readAsNumbers = false

        init(pem: String, keyURI: String, publicKeyInfo: [UInt8]) {
            self.pem = pem
            self.keyURI = keyURI
            self.publicKeyInfo = publicKeyInfo
        }

        private enum CodingKeys: String, CodingKey { case pem, keyURI, publicKeyInfo }

        // The public key is stored as base64 (a JSON array of numbers, as Signet 0.2.0 wrote, is read too):
        // this file is read on every `signet sign`, and decoding hundreds of numbers took about 0.3 ms.
        init(from decoder: Decoder) throws {
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

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(pem, forKey: .pem)
            try container.encode(keyURI, forKey: .keyURI)
            try container.encode(Data(publicKeyInfo).base64EncodedString(), forKey: .publicKeyInfo)
        }
    }
    var entries: [Entry] = []

    static func load(from directory: String = SignetPaths.current.data) -> OwnCertificates {
        guard let bytes = FileIO.readBytes(directory + "/own.json", limit: 4 << 20),
              let decoded = try? JSONDecoder().decode(OwnCertificates.self, from: Data(bytes)) else { return OwnCertificates() }
        return decoded
    }

    /// Remembers the certificates with keys in `inventory` (adding to what was known) in `directory`'s
    /// own.json. Beside it, own.index lists their SHA-256 fingerprints one per line, so that this (run on
    /// every `signet sign`) sees nothing is new without decoding the JSON, which took 0.4 ms.
    static func remember(_ inventory: Inventory, in directory: String = SignetPaths.current.data) {
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
    var certificates: [(Certificate, String, [UInt8])] {
        entries.compactMap { entry in
            guard let certificate = try? CertificateFile.read(Array(entry.pem.utf8)).certificates.first else { return nil }
            return (certificate, entry.keyURI, entry.publicKeyInfo)
        }
    }
}

extension Inventory.Installed {
    /// The private key's URI and public key, when the token shows the key (a public key stands for it while locked).
    var keyReference: (String, [UInt8])? {
        if let key = privateKey { return (key.uri, key.publicKeyInfo) }
        if let key = publicKey { return (Self.privateKeyURI(standingFor: key.uri), key.publicKeyInfo) }
        return nil
    }

    /// The URI of the private key paired with the public key at `text`: the same token and id, type=private.
    /// The label is dropped when there is an id (cards label the halves differently: OpenSC's PIV
    /// driver calls them "PIV AUTH pubkey" and "PIV AUTH key").
    static func privateKeyURI(standingFor text: String) -> String {
        guard var uri = try? PKCS11URI(parsing: text) else { return text }
        if uri.value("id") != nil { uri = uri.removing("object") }
        return uri.setting("type", Array("private".utf8)).description
    }
}

/// The address in a From: header (`Alice <alice@example.com>` → `alice@example.com`).
func mailAddress(_ header: String) -> String {
    if let open = header.lastIndex(of: "<"), let close = header[open...].firstIndex(of: ">") {
        return String(header[header.index(after: open)..<close]).trimmingSpaces().lowercased()
    }
    return header.trimmingSpaces().lowercased()
}

/// A temporary file with no name (created 0600 and unlinked at once), for ciphertext set aside or
/// plaintext held back until it is known good; it vanishes when closed or when the process ends.
final class Spool {
    let fd: Int32
    private var readOffset: off_t = 0

    /// Creates the file in `$TMPDIR` (default /tmp).
    init() throws {
        let directory = ProcessEnvironment.value("TMPDIR").flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/tmp"
        var template = Array("\(directory)/.signet-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw CLIError(description: "Cannot create a temporary file in \(directory): \(String(cString: strerror(errno))).").reported() }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        fchmod(fd, 0o600)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        self.fd = fd
    }

    deinit { close(fd) }

    /// Writes everything `pull` gives until it returns 0.
    func fill(from pull: (UnsafeMutableRawBufferPointer) throws -> Int) throws {
        var chunk = [UInt8](repeating: 0, count: 256 << 10)
        while true {
            let got = try chunk.withUnsafeMutableBytes { try pull($0) }
            if got == 0 { break }
            try chunk.withUnsafeBytes { try FileIO.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[..<got])) }
        }
    }

    /// Reads the file from the start, piece by piece (0 at the end).
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let got = pread(fd, buffer.baseAddress, buffer.count, readOffset)
        guard got >= 0 else { throw CLIError(description: "Reading a temporary file failed: \(String(cString: strerror(errno))).") }
        readOffset += off_t(got)
        return got
    }

    /// Copies the whole file to `output`.
    func copy(to output: Int32) throws {
        readOffset = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let got = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if got == 0 { return }
            try chunk.withUnsafeBytes { try FileIO.writeAll(output, UnsafeRawBufferPointer(rebasing: $0[..<got])) }
        }
    }
}

/// Reading an open file by position (what was just written to it).
struct FileView {
    let fd: Int32

    var size: Int { Int(lseek(fd, 0, SEEK_END)) }

    /// The first `count` bytes (fewer if the file is shorter).
    func head(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, 0) }
        return Array(bytes.prefix(max(0, got)))
    }

    /// The whole file (callers check `size` first).
    func contents() -> [UInt8] { head(size) }
}
