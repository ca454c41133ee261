// CPCSCLite: what Swift cannot import from libpcsclite's headers.
// Only macros that expand to globals or casts live here; everything else is
// imported directly.
#ifndef CPCSCLITE_SHIM_H
#define CPCSCLITE_SHIM_H

#include <PCSC/winscard.h>
#include <PCSC/wintypes.h>
#include <PCSC/reader.h>

/// Protocol control information for T=0 (`SCARD_PCI_T0` is a macro to a global).
static inline const SCARD_IO_REQUEST *CPCSCLite_pciT0(void) { return SCARD_PCI_T0; }
/// Protocol control information for T=1.
static inline const SCARD_IO_REQUEST *CPCSCLite_pciT1(void) { return SCARD_PCI_T1; }
/// Protocol control information for raw transfers.
static inline const SCARD_IO_REQUEST *CPCSCLite_pciRaw(void) { return SCARD_PCI_RAW; }
/// Size of `SCARD_READERSTATE.rgbAtr`.
static inline unsigned long CPCSCLite_maxATRSize(void) { return MAX_ATR_SIZE; }
/// `MAX_BUFFER_SIZE_EXTENDED`: room for the longest extended-length response.
static inline unsigned long CPCSCLite_maxExtendedBufferSize(void) { return MAX_BUFFER_SIZE_EXTENDED; }
/// `SCARD_ATTR_VENDOR_IFD_VERSION` etc. are cast macros; the ones Signet reads:
static inline unsigned long CPCSCLite_attrVendorName(void) { return SCARD_ATTR_VENDOR_NAME; }
/// `PCSCLITE_VERSION_NUMBER`: the pcsc-lite version of the headers Signet was built with.
static inline const char *CPCSCLite_headerVersion(void) { return PCSCLITE_VERSION_NUMBER; }

#endif
