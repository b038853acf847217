include $(sort $(wildcard $(BR2_EXTERNAL_ALPHAREN_PATH)/package/*/*.mk))
