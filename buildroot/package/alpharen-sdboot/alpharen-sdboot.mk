################################################################################
#
# alpharen-sdboot
#
################################################################################

ALPHAREN_SDBOOT_VERSION = 252.39-1~deb12u2
ALPHAREN_SDBOOT_SOURCE = systemd-boot-efi_$(ALPHAREN_SDBOOT_VERSION)_amd64.deb
ALPHAREN_SDBOOT_SITE = https://deb.debian.org/debian/pool/main/s/systemd
ALPHAREN_SDBOOT_LICENSE = LGPL-2.1+
ALPHAREN_SDBOOT_INSTALL_TARGET = NO
ALPHAREN_SDBOOT_INSTALL_IMAGES = YES

# A .deb is an ar archive; only the EFI binary is needed.
define ALPHAREN_SDBOOT_EXTRACT_CMDS
	cd $(@D) && ar x $(ALPHAREN_SDBOOT_DL_DIR)/$(ALPHAREN_SDBOOT_SOURCE) data.tar.xz
	tar -xJf $(@D)/data.tar.xz -C $(@D) ./usr/lib/systemd/boot/efi/systemd-bootx64.efi
endef

define ALPHAREN_SDBOOT_INSTALL_IMAGES_CMDS
	$(INSTALL) -D -m 0644 $(@D)/usr/lib/systemd/boot/efi/systemd-bootx64.efi \
		$(BINARIES_DIR)/systemd-bootx64.efi
endef

$(eval $(generic-package))
