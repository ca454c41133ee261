import ArgumentParser
import FoundationEssentials
import Glibc
import SignetCore
import SignetDirectory
import SignetMail
import SignetOpenSSL

/// The configured directories, for the commands that use them: the settings, and the simple-bind password
/// from `directory-password-file` or, without one, asked on the terminal (never argv or the environment).
enum Directories {
    /// The directory settings of the configuration.
    /// - Throws: `SignetError` naming the file and line of a bad value.
    static func settings() throws -> DirectorySettings {
        do { return try DirectorySettings(config: SignetConfig.load()) } catch {
            throw SignetError(.failure, "\(error).", cause: error)
        }
    }

    /// A lookup over the configured directories, with revocation checked as configured unless `offline`.
    static func lookup(settings: DirectorySettings, offline: Bool) -> DirectoryLookup {
        let lookup = DirectoryLookup(settings: settings) { () throws(DirectoryError) -> SharedSecret in
            try password(settings)
        }
        if !offline { lookup.revocationCheck = Revocation.checker(settings: settings) }
        return lookup
    }

    /// The simple-bind password.
    static func password(_ settings: DirectorySettings) throws(DirectoryError) -> SharedSecret {
        let dn = settings.bindDN ?? "?"
        if let file = settings.passwordFile {
            do { return try DirectoryPassword.read(file) } catch {
                throw DirectoryError(directory: "directory-password-file", reason: error.description)
            }
        }
        do { return SharedSecret(try AccessCodeInput.prompt("Directory password for \(dn): ")) } catch {
            throw DirectoryError(directory: "directory-bind-dn \(dn)",
                                 reason: "\(error) (no terminal to ask for the directory password; set directory-password-file, mode 0600)")
        }
    }
}

/// One certificate found in a directory, as `cert find` prints it.
struct FoundCertificate: Codable {
    var directory: String
    var dn: String
    var attribute: String
    var id: String
    var subject: String
    var issuer: String
    var serial: String
    var emails: [String]
    var notBefore: String
    var notAfter: String
    var chosen: Bool
    var refused: [String]
    var revocation: String?

    init(_ candidate: DirectoryCandidate, chosen: Bool) {
        let certificate = candidate.certificate
        directory = candidate.directory
        dn = candidate.dn
        attribute = candidate.attribute
        id = TrustStore.id(certificate)
        subject = certificate.subject
        issuer = certificate.issuer
        serial = certificate.serial
        emails = certificate.emails
        notBefore = Dates.day(certificate.notBefore)
        notAfter = Dates.day(certificate.notAfter)
        self.chosen = chosen
        refused = candidate.refusals
        revocation = candidate.revocation
    }
}

extension CertCommand {
    /// `signet cert find`: a colleague's encryption certificate in the organisation's directory.
    struct Find: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "find",
            abstract: "Find a colleague's encryption certificate in the configured LDAP directories.",
            discussion: """
            Searches each `directory = ldap[s]://host/BASE` of the configuration in order: an address on mail and \
            proxyAddresses, a name on cn and displayName. Reads userCertificate;binary, userCertificate and \
            userSMIMECertificate (DER and PKCS#7). A certificate is used only when it is valid now, chains to a root \
            in Signet's trust store, names the address, allows encryption and is not revoked; the newest such one \
            is chosen, and every refused one is shown with the reason. Found certificates are cached \
            (directory-cache-hours, default 24); --refresh asks the directory again. \
            Exit status: 0 a usable certificate was found, 1 otherwise.
            """
        )
        @Argument(help: "An email address, or a person's name as the directory has it.")
        var query: String
        @Flag(name: .long, help: "Ask the directories even when the cache has an answer.")
        var refresh = false
        @Flag(name: .long, help: "Skip the revocation checks (no OCSP or CRL request); the result says so.")
        var offline = false
        @OptionGroup var output: OutputOptions

        struct Report: Codable {
            var query: String
            var fromCache: Bool
            var directories: [String]
            var failures: [String]
            var revocationChecked: Bool
            var certificates: [FoundCertificate]
        }

        func run() throws {
            let settings = try Directories.settings()
            let result: DirectoryLookupResult
            do { result = try Directories.lookup(settings: settings, offline: offline).find(query, refresh: refresh) } catch {
                throw SignetError(.failure, "\(error).", cause: error)
            }
            let chosen = result.chosen.map { ObjectIdentifier($0.certificate) }
            let found = result.candidates.map { FoundCertificate($0, chosen: ObjectIdentifier($0.certificate) == chosen) }
            if output.json {
                try JSONOutput.print(Report(query: query, fromCache: result.fromCache, directories: result.notes,
                                            failures: result.failures.map(\.description), revocationChecked: !offline, certificates: found))
            } else {
                for note in result.notes { print(Console.safe(note)) }
                for failure in result.failures { Console.error(Console.safe("Error: \(failure)")) }
                for entry in found {
                    print(Console.safe("\(entry.chosen ? "chosen " : entry.refused.isEmpty ? "usable " : "refused") \(entry.id)  \(entry.subject)"))
                    print(Console.safe("        in \(entry.dn) (\(entry.attribute)), \(entry.directory)"))
                    print(Console.safe("        issuer \(entry.issuer), serial \(entry.serial), valid \(entry.notBefore) to \(entry.notAfter), "
                                       + "for \(entry.emails.isEmpty ? "no address" : entry.emails.joined(separator: ", "))"))
                    if let revocation = entry.revocation { print(Console.safe("        revocation: \(revocation)")) }
                    for reason in entry.refused { print(Console.safe("        refused: \(reason)")) }
                }
                if offline { print("Revocation was not checked (--offline).") }
            }
            guard result.chosen != nil else {
                let why = result.candidates.isEmpty ? (result.failures.isEmpty ? "no entry in the directories has a certificate for it" : "no directory could be asked")
                    : "every certificate found was refused (above)"
                throw SignetError(.failure, Console.safe("No usable certificate for \(query): \(why)."))
            }
        }
    }
}

/// Recipients named by address: the directory's newest usable certificate when directories are configured, or
/// a locally known one (verified mail, your own) when it is newer or the directory has none; revoked ones never.
enum DirectoryRecipients {
    /// The certificate for `name` (a file or an address), as `encrypt --to` takes it.
    /// - Throws: `SignetError` when no usable certificate is found, naming what the directories said.
    static func certificate(_ name: String, settings: DirectorySettings, offline: Bool, refresh: Bool) throws -> Certificate {
        let local = Result { try MailCertificates.recipient(name) }
        guard !settings.servers.isEmpty, !offline, DirectoryFilter.isAddress(name), !FileIO.exists(name) else { return try local.get() }
        let result: DirectoryLookupResult
        do { result = try Directories.lookup(settings: settings, offline: offline).find(name, refresh: refresh) } catch {
            throw SignetError(.failure, "\(error).", cause: error)
        }
        for failure in result.failures { Console.error(Console.safe("Warning: \(failure)")) }
        for uri in result.inTheClear {
            Console.error(Console.safe("Warning: \(uri) was searched in the clear: it offers no StartTLS (directory-tls = require refuses that)."))
        }
        if let chosen = result.chosen {
            if let known = try? local.get(), known.notBefore > chosen.certificate.notBefore { return known }
            return chosen.certificate
        }
        if let known = try? local.get() {
            if result.candidates.contains(where: { $0.certificate.sha256 == known.sha256 }) {
                throw SignetError(.failure, Console.safe("The certificate of \(name) you know is refused by the directory's checks: "
                                                         + (result.candidates.first { $0.certificate.sha256 == known.sha256 }?.refusals.joined(separator: "; ") ?? "")
                                                         + ". Nothing was encrypted."))
            }
            return known
        }
        let refused = result.candidates.map { "\(TrustStore.id($0.certificate)) \($0.certificate.subject): \($0.refusals.joined(separator: "; "))" }
        throw SignetError(.failure, Console.safe("No usable certificate for \(name)"
                                                 + (refused.isEmpty ? (result.failures.isEmpty ? " in the directories" : " (the directories could not be asked)")
                                                    : "; the directories hold only refused ones:\n  " + refused.joined(separator: "\n  "))
                                                 + "\nSee `signet cert find \(name)`. Nothing was encrypted."))
    }
}

extension CertCommand {
    /// `signet cert publish`: your certificate into your own directory entry.
    struct Publish: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "publish",
            abstract: "Publish your encryption certificate to your own entry in the directory, so colleagues find it.",
            discussion: """
            Writes to the entry you bind as in the first configured directory (directory-bind = simple, \
            directory-bind-dn, and the password from directory-password-file or the terminal; or directory-bind = \
            sasl-gssapi, your Kerberos ticket from kinit, and the entry the directory maps your principal to): the certificate in \
            userCertificate;binary, and a PKCS#7 bundle with its issuers in userSMIMECertificate when the entry's schema \
            has it. The certificate's key must be on your token, and the entry's mail address one the certificate names. \
            Says which entry and attribute it changed.
            """
        )
        @Argument(help: "The certificate's id from `signet cert list` (default: your encryption certificate).")
        var id: String?

        func run() throws {
            let settings = try Directories.settings()
            let client = try Agent.connect()
            let inventory = try Inventory.load(client: client)
            let installed: Inventory.Installed
            if let id { installed = try inventory.certificate(id) } else {
                guard let chosen = CertificateChoice.choose(.encryption, from: inventory.certificates) else {
                    throw SignetError(.failure, CertificateChoice.explanation(.encryption, installed: inventory.certificates)
                                      ?? "No encryption certificate is on your tokens; nothing was published.")
                }
                installed = chosen
            }
            guard installed.privateKey != nil || installed.publicKey != nil else {
                throw SignetError(.failure, Console.safe("The key of \(installed.certificate.subject) is not on your tokens, so it is not yours to "
                                                         + "publish; nothing was published. Insert the token that holds it, or see `signet cert repair`."))
            }
            let chain = TrustStore().chain(for: installed.certificate).filter { $0.sha256 != installed.certificate.sha256 }
            let changes: [DirectoryPublisher.Change]
            do { changes = try DirectoryPublisher.publish(installed.certificate, chain: chain, lookup: Directories.lookup(settings: settings, offline: true)) } catch {
                throw SignetError(.failure, "\(error).", cause: error)
            }
            print(Console.safe("Published \(installed.certificate.subject) (id \(installed.id)):"))
            for change in changes { print(Console.safe("  \(change)")) }
        }
    }

    /// `signet cert unpublish`: a certificate out of your own directory entry (after a renewal).
    struct Unpublish: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "unpublish",
            abstract: "Remove a certificate of yours from your own entry in the directory (after a renewal).",
            discussion: "Removes its userCertificate value and any userSMIMECertificate bundle holding it from the entry you bind as; says which."
        )
        @Argument(help: "The certificate's id (8 or more hex digits of its SHA-256 fingerprint); it need no longer be on your token.")
        var id: String

        func run() throws {
            let settings = try Directories.settings()
            let changes: [DirectoryPublisher.Change]
            do { changes = try DirectoryPublisher.unpublish(id: id, lookup: Directories.lookup(settings: settings, offline: true)) } catch {
                throw SignetError(.failure, "\(error).", cause: error)
            }
            print(Console.safe("Unpublished \(id):"))
            for change in changes { print(Console.safe("  \(change)")) }
        }
    }
}

/// Revocation checks as the configuration says (`revocation = require|prefer|off`): OCSP, then the CRL.
enum Revocation {
    /// The words for what a check found and what Signet did about it, and whether the certificate is refused.
    struct Verdict {
        var line: String
        var refusal: String?
        var revoked: Bool
    }

    /// Judges `status` under `policy`.
    static func verdict(_ status: RevocationChecker.Status, policy: DirectorySettings.Revocation) -> Verdict {
        switch status {
        case .good(let by):
            return Verdict(line: "good (\(by))", refusal: nil, revoked: false)
        case .revoked(let reason, let time, let by):
            let text = "REVOKED (\(reason), \(Dates.show(time)); \(by))"
            return Verdict(line: text, refusal: "it is revoked: \(reason) since \(Dates.show(time)) (\(by))", revoked: true)
        case .unknown(let why):
            if policy == .require {
                return Verdict(line: "could not be checked (\(why)); refused, as revocation = require", refusal: "its revocation could not be checked (\(why))",
                               revoked: false)
            }
            return Verdict(line: "could not be checked (\(why)); used anyway, as revocation = prefer", refusal: nil, revoked: false)
        }
    }

    /// A check for directory lookups and recipients, or nil when `revocation = off`.
    static func checker(settings: DirectorySettings) -> ((Certificate, [Certificate]) -> (refusal: String?, verdict: String))? {
        guard settings.revocation != .off else { return nil }
        let checker = RevocationChecker(allowLocal: settings.ocspFromLocal)
        return { certificate, path in
            let verdict = verdict(checker.check(certificate, path: path), policy: settings.revocation)
            return (verdict.refusal, verdict.line)
        }
    }

    /// Checks each recipient of `encrypt` (their path built from the trust store); throws for a revoked one, or,
    /// with `revocation = require`, one whose status is unknown. Warnings go to standard error unless `quiet`.
    static func checkRecipients(_ certificates: [Certificate], settings: DirectorySettings, offline: Bool, quiet: Bool) throws {
        guard !offline, let check = checker(settings: settings) else {
            if offline && !quiet { Console.error("Note: revocation was not checked (--offline).") }
            return
        }
        let stored = TrustStore().entries().map(\.certificate)
        for certificate in certificates {
            let (outcome, path) = ChainVerifier.verify(certificate, anchors: stored.filter(\.isSelfSigned),
                                                       intermediates: stored.filter { !$0.isSelfSigned }, at: Date())
            let result: (refusal: String?, verdict: String)
            if outcome == .trusted {
                result = check(certificate, path)
            } else {
                let why = "its path to a trusted root could not be built, so no responder can be trusted"
                result = settings.revocation == .require ? ("its revocation could not be checked (\(why))", "") : (nil, "could not be checked (\(why))")
            }
            if let refusal = result.refusal {
                throw SignetError(.failure, Console.safe("Not encrypted: the certificate of \(certificate.subject) (\(TrustStore.id(certificate))) is refused: "
                                                         + "\(refusal). Ask them for a current certificate."))
            }
            let namesNone = RevocationChecker.responders(certificate).isEmpty && certificate.crlDistributionPoints.isEmpty
            if !quiet && !result.verdict.hasPrefix("good") && !namesNone { Console.error(Console.safe("Warning: revocation of \(certificate.subject): \(result.verdict)")) }
        }
    }
}

extension Revocation {
    /// The OCSP check of `verify` and `decrypt` for signers trusted by their path: only certificates that name an
    /// OCSP responder are asked (those with only a CRL keep `--fetch-crl`, as before); with `--offline` none, and the report says so.
    static func signerCheck(offline: Bool) throws -> ((Certificate, [Certificate]) -> (line: String, revoked: String?, unchecked: String?)?)? {
        let settings = try Directories.settings()
        guard settings.revocation != .off else { return nil }
        if offline { return { _, _ in ("not checked (--offline)", nil, nil) } }
        let checker = RevocationChecker(allowLocal: settings.ocspFromLocal)
        return { certificate, path in
            guard !RevocationChecker.responders(certificate).isEmpty else {
                return settings.revocation == .require ? ("not checked: the certificate names no OCSP responder; refused, as revocation = require",
                                                          nil, "no OCSP responder named") : nil
            }
            let status = checker.check(certificate, path: path)
            let verdict = verdict(status, policy: settings.revocation)
            if case .revoked(let reason, let time, let by) = status { return (verdict.line, "revoked: \(reason) since \(Dates.show(time)) (\(by))", nil) }
            return (verdict.line, nil, verdict.refusal)
        }
    }
}
