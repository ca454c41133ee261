/// The bytes a hexadecimal text names; anything but hex digits (spaces in the standards' vectors) is skipped.
func hex(_ text: String) -> [UInt8] {
    var bytes: [UInt8] = [], high: UInt8?
    for character in text where character.isHexDigit {
        let nibble = UInt8(character.hexDigitValue!)
        if let h = high { bytes.append(h << 4 | nibble); high = nil } else { high = nibble }
    }
    return bytes
}
