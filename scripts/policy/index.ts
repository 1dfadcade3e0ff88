/**
 * The KeyBuzz policy pack, run by the Pulumi CLI: `pulumi preview --policy-pack scripts/policy`.
 * Every rule is mandatory: a violation stops the preview (and `up`).
 */
import { PolicyPack } from "@pulumi/policy";
import { keybuzzPolicies } from "./policies";

new PolicyPack("keybuzz", { enforcementLevel: "mandatory", policies: keybuzzPolicies });
