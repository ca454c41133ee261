// Forwarding header: <PCSC/winscard.h> includes <pcsclite.h> without the PCSC/ prefix.
#include <PCSC/pcsclite.h>
