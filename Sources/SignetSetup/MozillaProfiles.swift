#if canImport(Glibc)
import Glibc
#endif
import SignetCore

/// Mozilla programs' profiles: where each program keeps its `profiles.ini`, which profiles those files name
/// that the program uses, and whether the program runs.
///
/// Checked against the real programs in a fresh home: Firefox ESR 153 makes its first profile under
/// `$XDG_CONFIG_HOME/mozilla/firefox` (`~/.config/mozilla/firefox`), older releases and homes upgraded from
/// them keep `~/.mozilla/firefox`; Thunderbird 153 makes `~/.thunderbird` (with or without `XDG_CONFIG_HOME`).
/// Both also list a legacy `*.default` profile they never open (it holds only `times.json`): a profile is
/// used when it already has an NSS database or an install names it as its default (`installs.ini`, or an
/// `[Install…]` section of `profiles.ini`), so no database is made in a folder no program reads.
enum MozillaProfiles {
    /// A program that keeps its NSS databases in profiles.
    enum Program: String, CaseIterable {
        case thunderbird = "Thunderbird"
        case firefox = "Firefox"

        /// The commands that start it, looked for in `PATH`.
        var commands: [String] { self == .firefox ? ["firefox", "firefox-esr"] : ["thunderbird"] }
        var snapName: String { self == .firefox ? "firefox" : "thunderbird" }
        var flatpakID: String { self == .firefox ? "org.mozilla.firefox" : "org.mozilla.Thunderbird" }
    }

    /// One directory that may hold a program's `profiles.ini`.
    struct Place: Equatable {
        var program: Program
        /// "" for a native install, " (snap)" or " (flatpak)".
        var kind: String
        var base: String
    }

    /// One profile a program uses.
    struct Profile: Equatable {
        var program: Program
        var kind: String
        /// The profile's directory, absolute.
        var directory: String
        /// Its folder name, as the output names it.
        var name: String { directory.split(separator: "/").last.map(String.init) ?? directory }
    }

    /// Every place, native first. Snap and flatpak keep a home of their own: the classic `.mozilla/firefox` in it,
    /// and the XDG one where the sandbox points `XDG_CONFIG_HOME` (flatpak: `~/.var/app/ID/config`).
    static func places(home: String, configHome: String) -> [Place] {
        var places: [Place] = []
        for program in Program.allCases {
            let snap = home + "/snap/" + program.snapName
            let flatpak = home + "/.var/app/" + program.flatpakID
            switch program {
            case .thunderbird:
                places += [
                    Place(program: program, kind: "", base: home + "/.thunderbird"),
                    Place(program: program, kind: " (snap)", base: snap + "/common/.thunderbird"),
                    Place(program: program, kind: " (flatpak)", base: flatpak + "/.thunderbird"),
                ]
            case .firefox:
                places += [
                    Place(program: program, kind: "", base: configHome + "/mozilla/firefox"),
                    Place(program: program, kind: "", base: home + "/.mozilla/firefox"),
                    Place(program: program, kind: " (snap)", base: snap + "/common/.mozilla/firefox"),
                    Place(program: program, kind: " (snap)", base: snap + "/common/.config/mozilla/firefox"),
                    Place(program: program, kind: " (flatpak)", base: flatpak + "/.mozilla/firefox"),
                    Place(program: program, kind: " (flatpak)", base: flatpak + "/config/mozilla/firefox"),
                ]
            }
        }
        return places
    }

    /// The profiles `program` uses, over all its places, each directory once.
    static func profiles(of program: Program, home: String, configHome: String) -> [Profile] {
        var found: [Profile] = []
        var seen: Set<String> = []
        for place in places(home: home, configHome: configHome) where place.program == program {
            guard let ini = FileIO.readText(place.base + "/profiles.ini", limit: 1 << 20) else { continue }
            let installs = FileIO.readText(place.base + "/installs.ini", limit: 1 << 20).map(INI.installDefaults) ?? []
            for directory in used(profilesINI: ini, installsINI: installs, base: place.base, hasDatabase: hasDatabase) {
                guard isDirectory(directory), seen.insert(canonical(directory)).inserted else { continue }
                found.append(Profile(program: program, kind: place.kind, directory: directory))
            }
        }
        return found
    }

    /// Whether `directory` holds an NSS database (made by the program on its first start in that profile).
    static func hasDatabase(_ directory: String) -> Bool {
        FileIO.exists(directory + "/cert9.db") || FileIO.exists(directory + "/pkcs11.txt")
    }

    /// The absolute directories of the profiles `profiles.ini` names that are used: each with a database
    /// (`hasDatabase`), or named as an install's default (in `profiles.ini`'s `[Install…]` sections or in
    /// `installsINI`, the values of `installs.ini`'s `Default=`), in the file's order.
    static func used(profilesINI: String, installsINI: [String], base: String, hasDatabase: (String) -> Bool) -> [String] {
        let parsed = INI.profiles(profilesINI)
        let defaults = Set((parsed.installDefaults + installsINI).map { absolute($0, relative: !$0.hasPrefix("/"), base: base) })
        return parsed.profiles.map { absolute($0.path, relative: $0.isRelative, base: base) }
            .filter { defaults.contains($0) || hasDatabase($0) }
    }

    private static func absolute(_ path: String, relative: Bool, base: String) -> String {
        relative ? base + "/" + path : path
    }

    /// Whether `program` is installed: a command of it in `path` (a `PATH` value), its snap, or its flatpak
    /// (system-wide or the user's).
    static func installed(_ program: Program, path: String, home: String) -> Bool {
        let commands = path.split(separator: ":").flatMap { directory in program.commands.map { "\(directory)/\($0)" } }
        let others = ["/snap/bin/" + program.snapName, "/var/lib/flatpak/app/" + program.flatpakID,
                      home + "/.local/share/flatpak/app/" + program.flatpakID]
        return (commands + others).contains { access($0, F_OK) == 0 }
    }

    /// The pid of the program that has `profile` open, or nil: the target of its `lock` symlink
    /// (`127.0.0.1:+PID`) when that process is alive, else the holder of an fcntl lock on `.parentlock`.
    /// A lock left by a program that crashed (its pid gone) does not count.
    static func runningPID(_ profile: String) -> pid_t? {
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = buffer.withUnsafeMutableBytes { readlink(profile + "/lock", $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count - 1) }
        if count > 0 {
            let target = String(decoding: buffer.prefix(count), as: UTF8.self)
            if let plus = target.lastIndex(of: "+"), let pid = pid_t(target[target.index(after: plus)...]), pid > 0,
               kill(pid, 0) == 0 || errno == EPERM {
                return pid
            }
        }
        let fd = open(profile + "/.parentlock", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        guard fcntl(fd, F_GETLK, &lock) == 0, lock.l_type != Int16(F_UNLCK) else { return nil }
        return lock.l_pid
    }

    private static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    private static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Mozilla's INI files, as the programs read them: `[Section]` headers, `Key=Value` lines (the key
    /// case-sensitive, spaces kept in the value), `;` and `#` comments, LF or CRLF lines.
    enum INI {
        /// A `[Profile…]` section's `Path=` and whether it is relative (`IsRelative=0` makes it absolute).
        struct Entry: Equatable {
            var path: String
            var isRelative: Bool
        }

        /// The sections of `text`, in order, each as its name and its keys (a later key wins).
        static func sections(_ text: String) -> [(name: String, values: [String: String])] {
            var sections: [(name: String, values: [String: String])] = []
            for raw in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
                let line = raw.trimmingSpaces
                if line.isEmpty || line.hasPrefix(";") || line.hasPrefix("#") { continue }
                if line.hasPrefix("["), line.hasSuffix("]") {
                    sections.append((String(line.dropFirst().dropLast()), [:]))
                } else if let equals = line.firstIndex(of: "="), !sections.isEmpty {
                    sections[sections.count - 1].values[String(line[..<equals])] = String(line[line.index(after: equals)...])
                }
            }
            return sections
        }

        /// `profiles.ini`: its profiles (`[Profile…]` sections with a `Path=`) and its installs' defaults
        /// (`Default=` of `[Install…]` sections).
        static func profiles(_ text: String) -> (profiles: [Entry], installDefaults: [String]) {
            var profiles: [Entry] = []
            var defaults: [String] = []
            for section in sections(text) {
                if section.name.hasPrefix("Profile"), let path = section.values["Path"], !path.isEmpty {
                    profiles.append(Entry(path: path, isRelative: section.values["IsRelative"] != "0"))
                } else if section.name.hasPrefix("Install"), let path = section.values["Default"], !path.isEmpty {
                    defaults.append(path)
                }
            }
            return (profiles, defaults)
        }

        /// `installs.ini`: the `Default=` of every section (one per install, named by its hash).
        static func installDefaults(_ text: String) -> [String] {
            sections(text).compactMap { $0.values["Default"] }.filter { !$0.isEmpty }
        }
    }
}
