import Foundation
@testable import SignetSetup
import SignetTestSupport
import Testing

/// The profile parsers and the places: profiles.ini and installs.ini as Firefox ESR 153 and Thunderbird 153
/// wrote them in a fresh home (copied from those runs, profile names kept), and the snap and flatpak layouts
/// on a real directory tree.
@Suite("Setup: Mozilla profiles")
struct ProfileTests {
    /// Firefox ESR 153's profiles.ini after its first start in a fresh home (~/.config/mozilla/firefox).
    static let firefoxProfiles = """
        [Profile1]
        Name=default
        IsRelative=1
        Path=nzrnygi6.default
        Default=1

        [Profile0]
        Name=default-esr
        IsRelative=1
        Path=mub3wp0h.default-esr

        [General]
        StartWithLastProfile=1
        Version=2

        [Install3B6073811A6ABF12]
        Default=mub3wp0h.default-esr
        Locked=1

        """
    /// Thunderbird 153's installs.ini after its first start (~/.thunderbird).
    static let thunderbirdInstalls = "[FDC34C9F024745EB]\nDefault=iw6nb6u4.default-default\nLocked=1\n\n"

    @Test("profiles.ini: every [Profile…] section's Path and IsRelative, and the [Install…] sections' defaults")
    func profilesINI() {
        let parsed = MozillaProfiles.INI.profiles(Self.firefoxProfiles)
        #expect(parsed.profiles == [.init(path: "nzrnygi6.default", isRelative: true), .init(path: "mub3wp0h.default-esr", isRelative: true)])
        #expect(parsed.installDefaults == ["mub3wp0h.default-esr"])
    }

    @Test("profiles.ini with CRLF lines, comments, an absolute profile (IsRelative=0) and a section without Path")
    func profilesINIVariants() {
        let text = "; made by hand\r\n[Profile0]\r\nName=work\r\nIsRelative=0\r\nPath=/srv/profiles/work\r\n\r\n# no path\r\n[Profile1]\r\nName=broken\r\n"
        let parsed = MozillaProfiles.INI.profiles(text)
        #expect(parsed.profiles == [.init(path: "/srv/profiles/work", isRelative: false)])
        #expect(parsed.installDefaults.isEmpty)
    }

    @Test("installs.ini: each install's Default")
    func installsINI() {
        #expect(MozillaProfiles.INI.installDefaults(Self.thunderbirdInstalls) == ["iw6nb6u4.default-default"])
        #expect(MozillaProfiles.INI.installDefaults("[A]\nDefault=a\n[B]\nLocked=1\n[C]\nDefault=/abs/c\n") == ["a", "/abs/c"])
    }

    @Test("A profile is used when it has a database or an install names it; the legacy *.default that holds no database is not")
    func usedProfiles() {
        let base = "/home/u/.config/mozilla/firefox"
        // First start: the install's default has its database; the legacy profile has only times.json.
        let firstRun = MozillaProfiles.used(profilesINI: Self.firefoxProfiles, installsINI: [], base: base,
                                            hasDatabase: { $0 == base + "/mub3wp0h.default-esr" })
        #expect(firstRun == [base + "/mub3wp0h.default-esr"])
        // Created (-CreateProfile) but never started: named by installs.ini only.
        let ini = "[Profile0]\nPath=a.new\n[Profile1]\nPath=b.other\n"
        #expect(MozillaProfiles.used(profilesINI: ini, installsINI: ["a.new"], base: base, hasDatabase: { _ in false }) == [base + "/a.new"])
        // Profiles made by the profile manager and used since: every one with a database.
        #expect(MozillaProfiles.used(profilesINI: ini, installsINI: [], base: base, hasDatabase: { _ in true }) == [base + "/a.new", base + "/b.other"])
    }

    @Test("The places: Firefox's XDG directory first, the classic one, and the snap and flatpak homes; Thunderbird's three")
    func places() {
        let places = MozillaProfiles.places(home: "/h", configHome: "/h/.config")
        let firefox = places.filter { $0.program == .firefox }.map(\.base)
        #expect(firefox == ["/h/.config/mozilla/firefox", "/h/.mozilla/firefox", "/h/snap/firefox/common/.mozilla/firefox",
                            "/h/snap/firefox/common/.config/mozilla/firefox", "/h/.var/app/org.mozilla.firefox/.mozilla/firefox",
                            "/h/.var/app/org.mozilla.firefox/config/mozilla/firefox"])
        let thunderbird = places.filter { $0.program == .thunderbird }.map(\.base)
        #expect(thunderbird == ["/h/.thunderbird", "/h/snap/thunderbird/common/.thunderbird", "/h/.var/app/org.mozilla.Thunderbird/.thunderbird"])
        #expect(MozillaProfiles.places(home: "/h", configHome: "/elsewhere").first { $0.program == .firefox }?.base == "/elsewhere/mozilla/firefox")
    }

    @Test("Snap and flatpak layouts on disk: each profile its profiles.ini names and uses, labelled by kind, each directory once")
    func snapAndFlatpakOnDisk() throws {
        let home = try TestPaths.temporaryDirectory("signet-setup-layout").path
        defer { try? FileManager.default.removeItem(atPath: home) }
        func profile(_ base: String, _ name: String, database: Bool, ini: String? = nil) throws {
            try FileManager.default.createDirectory(atPath: base + "/" + name, withIntermediateDirectories: true)
            if database { _ = FileManager.default.createFile(atPath: base + "/" + name + "/cert9.db", contents: Data()) }
            if let ini { try ini.write(toFile: base + "/profiles.ini", atomically: true, encoding: .utf8) }
        }
        let snap = home + "/snap/firefox/common/.mozilla/firefox"
        let flatpak = home + "/.var/app/org.mozilla.firefox/config/mozilla/firefox"
        let flatpakTB = home + "/.var/app/org.mozilla.Thunderbird/.thunderbird"
        try profile(snap, "s.default", database: true, ini: "[Profile0]\nPath=s.default\n[Profile1]\nPath=gone\n")
        try profile(flatpak, "f.default-release", database: true, ini: "[Profile0]\nPath=f.default-release\n")
        try profile(flatpakTB, "t.default", database: false, ini: "[Profile0]\nPath=t.default\n")
        // The same profile named twice (a symlinked folder): once.
        try FileManager.default.createSymbolicLink(atPath: snap + "/alias", withDestinationPath: snap + "/s.default")
        try "[Profile0]\nPath=s.default\n[Profile1]\nPath=alias\n".write(toFile: snap + "/profiles.ini", atomically: true, encoding: .utf8)

        let firefox = MozillaProfiles.profiles(of: .firefox, home: home, configHome: home + "/.config")
        #expect(firefox.map(\.directory) == [snap + "/s.default", flatpak + "/f.default-release"])
        #expect(firefox.map(\.kind) == [" (snap)", " (flatpak)"])
        #expect(firefox.map(\.name) == ["s.default", "f.default-release"])
        // A Thunderbird profile with no database that no install names is not used yet.
        #expect(MozillaProfiles.profiles(of: .thunderbird, home: home, configHome: home + "/.config").isEmpty)
    }
}
