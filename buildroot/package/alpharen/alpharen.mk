################################################################################
#
# alpharen
#
################################################################################

ALPHAREN_VERSION = 0.1.0
# The source is this repository; Buildroot's cargo download step vendors
# the crates listed in Cargo.lock into the source tarball, so the build
# itself runs with --offline.
ALPHAREN_SITE = $(BR2_EXTERNAL_ALPHAREN_PATH)/..
ALPHAREN_SITE_METHOD = local
ALPHAREN_LICENSE = Apache-2.0
ALPHAREN_CARGO_BUILD_OPTS = --package alpharen

define ALPHAREN_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/target/$(RUSTC_TARGET_NAME)/release/alpharen \
		$(TARGET_DIR)/usr/bin/alpharen
	ln -sf ../usr/bin/alpharen $(TARGET_DIR)/sbin/init
	ln -sf ../bin/alpharen $(TARGET_DIR)/usr/sbin/sendmail
endef

$(eval $(cargo-package))
