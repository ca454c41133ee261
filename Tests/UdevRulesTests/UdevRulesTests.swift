import Foundation
import SignetTestSupport
import Testing

/// A small udev rules evaluator: enough of udev's syntax and matching (keys,
/// operators, globs with `|` alternatives, GOTO/LABEL) to check that Signet's
/// rules parse and tag exactly the intended devices.
struct UdevRules {
    struct Term: Equatable {
        var key: String
        var attribute: String?
        var op: String
        var value: String
    }

    struct Device {
        var action = "add"
        var subsystem = "usb"
        var devtype = "usb_device"
        var env: [String: String] = [:]
        var attributes: [String: String] = [:]
    }

    static let matchKeys: Set<String> = ["ACTION", "SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "DRIVER", "DRIVERS", "ENV", "ATTR", "ATTRS", "TAG"]
    static let assignKeys: Set<String> = ["ENV", "TAG", "GOTO", "LABEL", "MODE", "GROUP", "OWNER", "RUN", "SYMLINK"]

    var rules: [[Term]] = []

    /// Parses rules text; throws on any term that is not `KEY[{attr}]OP"value"` with a known key.
    init(parsing text: String) throws {
        let pattern = try NSRegularExpression(pattern: #"^([A-Z_]+)(\{([^}]+)\})?(==|!=|\+=|-=|:=|=)"([^"]*)"$"#)
        for (number, rawLine) in text.components(separatedBy: "\n").enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            var terms: [Term] = []
            for part in line.components(separatedBy: ", ") {
                let token = part.trimmingCharacters(in: .whitespaces)
                let range = NSRange(token.startIndex..., in: token)
                guard let match = pattern.firstMatch(in: token, range: range) else {
                    throw TestFailure("line \(number + 1): cannot parse \"\(token)\"")
                }
                func group(_ index: Int) -> String? {
                    Range(match.range(at: index), in: token).map { String(token[$0]) }
                }
                let term = Term(key: group(1)!, attribute: group(3), op: group(4)!, value: group(5)!)
                let isMatch = term.op == "==" || term.op == "!="
                guard isMatch ? UdevRules.matchKeys.contains(term.key) : UdevRules.assignKeys.contains(term.key) else {
                    throw TestFailure("line \(number + 1): \(term.key) cannot be used with \(term.op)")
                }
                terms.append(term)
            }
            rules.append(terms)
        }
        let labels = Set(rules.flatMap { $0 }.filter { $0.key == "LABEL" }.map(\.value))
        for target in rules.flatMap({ $0 }).filter({ $0.key == "GOTO" }) where !labels.contains(target.value) {
            throw TestFailure("GOTO \(target.value) has no LABEL")
        }
    }

    /// Runs the rules on `device`; returns the tags added and the environment afterwards.
    func apply(to device: Device) -> (tags: Set<String>, env: [String: String]) {
        var env = device.env
        env["DEVTYPE"] = device.devtype
        var tags = Set<String>()
        var index = 0
        while index < rules.count {
            let rule = rules[index]
            index += 1
            if let label = rule.first(where: { $0.key == "LABEL" }), rule.count == 1 { _ = label; continue }
            let matched = rule.filter { $0.op == "==" || $0.op == "!=" }.allSatisfy { term in
                let actual: String?
                switch term.key {
                case "ACTION": actual = device.action
                case "SUBSYSTEM", "SUBSYSTEMS": actual = device.subsystem
                case "ENV": actual = env[term.attribute ?? ""]
                case "ATTR", "ATTRS": actual = device.attributes[term.attribute ?? ""]
                case "TAG": actual = tags.contains(term.value) ? term.value : nil
                default: actual = nil
                }
                let hit = UdevRules.glob(term.value, matches: actual ?? "")
                return term.op == "==" ? hit : !hit
            }
            guard matched else { continue }
            for term in rule where term.op != "==" && term.op != "!=" {
                switch term.key {
                case "TAG": tags.insert(term.value)
                case "ENV": env[term.attribute ?? ""] = term.value
                case "GOTO":
                    if let target = rules.firstIndex(where: { $0.contains { $0.key == "LABEL" && $0.value == term.value } }) {
                        index = target + 1
                    }
                default: break
                }
            }
        }
        return (tags, env)
    }

    /// udev's glob: `*`, `?`, `[...]`, and `|` between alternatives.
    static func glob(_ pattern: String, matches text: String) -> Bool {
        pattern.components(separatedBy: "|").contains { fnmatch($0, text, 0) == 0 }
    }
}

@Suite("udev rules and modprobe blacklist")
struct UdevRulesTests {
    static let rulesURL = TestPaths.repository.appendingPathComponent("udev/70-signet.rules")

    func rules() throws -> UdevRules {
        try UdevRules(parsing: String(contentsOf: UdevRulesTests.rulesURL, encoding: .utf8))
    }

    @Test("The rules parse: every term is KEY[{attr}]OP\"value\" with a known key, and every GOTO has its LABEL")
    func parses() throws {
        let parsed = try rules()
        #expect(parsed.rules.count >= 6)
    }

    @Test("The rules sort before systemd's 73-seat-late.rules, which applies uaccess")
    func ordering() {
        let number = Int(UdevRulesTests.rulesURL.lastPathComponent.prefix(2)) ?? 99
        #expect(number < 73)
    }

    @Test("A malformed rule is rejected by the parser")
    func parserRejects() {
        #expect(throws: TestFailure.self) { try UdevRules(parsing: #"ATTR{idVendor}="072f" TAG+="uaccess""#) }
        #expect(throws: TestFailure.self) { try UdevRules(parsing: #"BOGUS=="1", TAG+="uaccess""#) }
        #expect(throws: TestFailure.self) { try UdevRules(parsing: #"ACTION=="add", GOTO="nowhere""#) }
    }

    @Test("USB tokens and CCID readers (interface class 0x0B) get uaccess", arguments: [
        ("YubiKey 5 NFC", "1050", "0407", ":030101:030000:0b0000:"),
        ("Nitrokey 3", "20a0", "42b2", ":0b0000:030000:"),
        ("Generic CCID reader", "076b", "3031", ":0b0000:"),
    ])
    func ccid(_ name: String, _ vendor: String, _ product: String, _ interfaces: String) throws {
        let device = UdevRules.Device(env: ["ID_USB_INTERFACES": interfaces], attributes: ["idVendor": vendor, "idProduct": product])
        let result = try rules().apply(to: device)
        #expect(result.tags.contains("uaccess"), "\(name)")
        #expect(result.env["ID_SMARTCARD_READER"] == "1")
    }

    @Test("Common USB NFC readers get uaccess", arguments: [
        ("ACS ACR122U", "072f", "2200"), ("ACS ACR1252U", "072f", "223b"), ("SCM SCL3711", "04e6", "5591"),
        ("Identiv uTrust 3700 F", "04e6", "5790"), ("Sony RC-S380", "054c", "06c3"),
    ])
    func nfc(_ name: String, _ vendor: String, _ product: String) throws {
        let device = UdevRules.Device(env: ["ID_USB_INTERFACES": ":ff0000:"], attributes: ["idVendor": vendor, "idProduct": product])
        #expect(try rules().apply(to: device).tags.contains("uaccess"), "\(name)")
    }

    @Test("Other devices, interfaces and removals are left alone")
    func nonMatches() throws {
        let parsed = try rules()
        let keyboard = UdevRules.Device(env: ["ID_USB_INTERFACES": ":030101:030102:"], attributes: ["idVendor": "046d", "idProduct": "c31c"])
        #expect(parsed.apply(to: keyboard).tags.isEmpty)
        let storage = UdevRules.Device(env: ["ID_USB_INTERFACES": ":080650:"], attributes: ["idVendor": "0781", "idProduct": "5581"])
        #expect(parsed.apply(to: storage).tags.isEmpty)
        let otherACS = UdevRules.Device(env: ["ID_USB_INTERFACES": ":ff0000:"], attributes: ["idVendor": "072f", "idProduct": "9000"])
        #expect(parsed.apply(to: otherACS).tags.isEmpty)
        var interface = UdevRules.Device(env: ["ID_USB_INTERFACES": ":0b0000:"], attributes: ["idVendor": "1050", "idProduct": "0407"])
        interface.devtype = "usb_interface"
        #expect(parsed.apply(to: interface).tags.isEmpty)
        var removal = UdevRules.Device(env: ["ID_USB_INTERFACES": ":0b0000:"], attributes: ["idVendor": "1050", "idProduct": "0407"])
        removal.action = "remove"
        #expect(parsed.apply(to: removal).tags.isEmpty)
        var hidraw = UdevRules.Device(env: ["ID_USB_INTERFACES": ":0b0000:"], attributes: [:])
        hidraw.subsystem = "hidraw"
        #expect(parsed.apply(to: hidraw).tags.isEmpty)
    }

    @Test("udevadm accepts the rules file where it can check one")
    func udevadm() throws {
        // `udevadm verify` arrived in systemd 253; Debian 12 has 252, where
        // `udevadm --version` is all that runs. The parser tests above are the check there.
        let version = try Run.command("udevadm", ["--version"])
        #expect(version.status == 0)
        if let number = Int(version.output.trimmingCharacters(in: .whitespacesAndNewlines)), number >= 253 {
            let result = try Run.command("udevadm", ["verify", UdevRulesTests.rulesURL.path])
            #expect(result.status == 0, "\(result.errors)")
        }
    }

    @Test("The modprobe file blacklists the kernel NFC drivers that claim USB NFC readers")
    func blacklist() throws {
        let text = try String(contentsOf: TestPaths.repository.appendingPathComponent("udev/signet-blacklist-nfc.conf"), encoding: .utf8)
        let lines = text.components(separatedBy: "\n").filter { !$0.hasPrefix("#") && !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        let modules = Set(lines.compactMap { line -> String? in
            let words = line.split(separator: " ")
            return words.count == 2 && words[0] == "blacklist" ? String(words[1]) : nil
        })
        #expect(modules.count == lines.count, "every line is `blacklist <module>`")
        #expect(modules.isSuperset(of: ["pn533", "pn533_usb"]))
    }
}
