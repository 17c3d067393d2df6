-- DICOM objects de-identified per contract (issue 20): what publish counts of
-- them, and the comments of the DICOM functions. The grants follow finalize.sql's
-- deny-by-default lists: deidentify_dicom is the operator's, _dicom_object,
-- _dicom_study_date and _dicom_quasi_identifiers the extension owner's alone
-- (publish and refresh call them).

CREATE TABLE contract_image (
    contract_id      text NOT NULL,
    view_name        name NOT NULL,
    column_name      name NOT NULL,
    -- At the last publish or refresh: objects shown, and objects withheld because
    -- they say BurnedInAnnotation = YES and the rule does not accept that.
    images_shown     bigint NOT NULL,
    images_withheld  bigint NOT NULL CHECK (images_withheld >= 0),
    PRIMARY KEY (contract_id, view_name, column_name)
);
COMMENT ON TABLE contract_image IS 'DICOM objects shown and withheld (burned-in annotation) per dicom column of a contract, at its last publish or refresh.';
SELECT pg_catalog.pg_extension_config_dump('contract_image', '');
REVOKE ALL ON TABLE contract_image FROM PUBLIC;
GRANT SELECT ON TABLE contract_image TO medanon_operator;

COMMENT ON FUNCTION deidentify_dicom(bytea, text, bigint) IS
'A DICOM object de-identified for a person of a published contract, as its dicom column shows it: PS3.15 Annex E basic profile, PatientID the person''s token, UIDs keyed under the contract (2.25.<128 bits>), dates moved by the person''s offset. NULL (with a NOTICE) for BurnedInAnnotation = YES unless the rule accepts it. Bad object: 22P03, 54000 or 0A000. Operator only.';
COMMENT ON FUNCTION _dicom_object(bytea, bigint, integer, text, integer, integer, boolean, boolean) IS
'Internal to publish and refresh: the object of a dicom column for the token and offset of the contract''s map. Keyed; granted to nobody.';
COMMENT ON FUNCTION _dicom_study_date(bytea) IS
'Internal to publish: an object''s study date, unshifted, for the calendar check. Granted to nobody.';
COMMENT ON FUNCTION _dicom_quasi_identifiers(bytea, integer, integer, boolean) IS
'Internal to publish and refresh: the PatientAge band and PatientSex an object shows once de-identified under a dicom rule (age|sex), a quasi-identifier of the person''s class, so k counts what images show. Granted to nobody.';
